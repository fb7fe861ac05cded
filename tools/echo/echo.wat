;; echo: the smallest useful tool, written by hand against the canonical ABI.
;; It returns its input unchanged and imports nothing. It is the "small native
;; tool" of the benchmarks: its cost is the runtime's cost.
(module
  (memory (export "memory") 1)
  ;; A bump allocator: each run gets a fresh instance, so nothing is freed.
  (global $heap (mut i32) (i32.const 1024))
  (data (i32.const 16) "echo")
  (data (i32.const 32) "Returns its input unchanged.")
  (data (i32.const 96) "{\"type\":\"object\"}")
  ;; describe's return area: name, description, input-schema as (ptr, len) pairs.
  (data (i32.const 200) "\10\00\00\00\04\00\00\00\20\00\00\00\1c\00\00\00\60\00\00\00\11\00\00\00")

  (func (export "cabi_realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
    (local $p i32)
    (local.set $p
      (i32.and
        (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get $align))))
    (global.set $heap (i32.add (local.get $p) (local.get $size)))
    (block $fits
      (loop $grow
        (br_if $fits (i32.le_u (global.get $heap) (i32.shl (memory.size) (i32.const 16))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then (unreachable)))
        (br $grow)))
    (local.get $p))

  (func (export "describe") (result i32) (i32.const 200))

  ;; run(input: string) -> result<string, string>: ok(input), written at 300.
  (func (export "run") (param $ptr i32) (param $len i32) (result i32)
    (i32.store8 (i32.const 300) (i32.const 0))
    (i32.store (i32.const 304) (local.get $ptr))
    (i32.store (i32.const 308) (local.get $len))
    (i32.const 300))
)
