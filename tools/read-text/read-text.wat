;; read-text: reads one text file through the host's fs interface and returns
;; its content. Written by hand against the canonical ABI so that it builds
;; into a component of a few KB (no JavaScript engine inside), which is why
;; the published package can carry it ready to run. Which files it may read
;; is decided by the gate, never by the tool; a refusal comes back as the
;; tool's error, "E_CAP_SCOPE: ..." (the code and message of the denial).
;;
;; Input: {"path": "/absolute/path"} (the path may not contain a quote or a
;; backslash: this tool does not decode JSON escapes). Output: the file's
;; content, which must be UTF-8.
(module
  (import "authority:sandbox/fs@0.1.0" "read-file" (func $read (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "read-text")
  (data (i32.const 32) "Reads a UTF-8 text file and returns its content.")
  (data (i32.const 96) "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\",\"description\":\"Absolute path of the file.\"}},\"required\":[\"path\"],\"additionalProperties\":false}")
  ;; 256: the description record (name, description, input-schema as ptr/len pairs)
  (data (i32.const 256) "\10\00\00\00\09\00\00\00\20\00\00\00\30\00\00\00\60\00\00\00\95\00\00\00")
  (data (i32.const 288) "\"path\"")
  (data (i32.const 296) "the input must be {\"path\": \"/absolute/path\"}")
  (data (i32.const 352) ": ")
  ;; error case names, 16 bytes apart, by the discriminant of the WIT error variant
  (data (i32.const 384) "denied")
  (data (i32.const 400) "not-found")
  (data (i32.const 416) "invalid")
  (data (i32.const 432) "too-large")
  (data (i32.const 448) "rate-limited")
  (data (i32.const 464) "budget-exhausted")
  (data (i32.const 480) "io")
  (data (i32.const 496) "timeout")
  (data (i32.const 512) "\06\09\07\09\0c\10\02\07")
  ;; 600: the run result (tag, string ptr, len); 640: the read-file result
  (global $heap (mut i32) (i32.const 4096))

  (func $alloc (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (global.set $heap (i32.add (local.get $p) (local.get $size)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (if (i32.lt_s (memory.grow (i32.add (i32.shr_u (local.get $size) (i32.const 16)) (i32.const 1))) (i32.const 0)) (then unreachable))))
    (local.get $p))

  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (call $alloc (local.get 3)))

  (func (export "describe") (result i32) (i32.const 256))

  ;; Set the run result at 600 to (tag, ptr, len) and return its address.
  (func $result (param $tag i32) (param $ptr i32) (param $len i32) (result i32)
    (i32.store8 (i32.const 600) (local.get $tag))
    (i32.store (i32.const 604) (local.get $ptr))
    (i32.store (i32.const 608) (local.get $len))
    (i32.const 600))

  ;; A fresh string: a, then ": ", then b.
  (func $join (param $a i32) (param $alen i32) (param $b i32) (param $blen i32) (result i32)
    (local $out i32)
    (local.set $out (call $alloc (i32.add (i32.add (local.get $alen) (local.get $blen)) (i32.const 2))))
    (memory.copy (local.get $out) (local.get $a) (local.get $alen))
    (memory.copy (i32.add (local.get $out) (local.get $alen)) (i32.const 352) (i32.const 2))
    (memory.copy (i32.add (i32.add (local.get $out) (local.get $alen)) (i32.const 2)) (local.get $b) (local.get $blen))
    (local.get $out))

  (func (export "run") (param $in i32) (param $len i32) (result i32)
    (local $i i32) (local $end i32) (local $start i32) (local $c i32) (local $tag i32) (local $name i32) (local $nlen i32)
    (local.set $end (i32.add (local.get $in) (local.get $len)))
    ;; find "path"
    (local.set $i (local.get $in))
    (block $found
      (loop $scan
        (br_if $found (i32.gt_u (i32.add (local.get $i) (i32.const 6)) (local.get $end)))
        (if (i32.and
              (i32.eq (i32.load (local.get $i)) (i32.load (i32.const 288)))
              (i32.eq (i32.load16_u (i32.add (local.get $i) (i32.const 4))) (i32.load16_u (i32.const 292))))
          (then (local.set $i (i32.add (local.get $i) (i32.const 6))) (br $found)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan)))
    ;; skip spaces and one colon up to the opening quote
    (block $open
      (loop $skip
        (if (i32.ge_u (local.get $i) (local.get $end)) (then (return (call $result (i32.const 1) (i32.const 296) (i32.const 44)))))
        (local.set $c (i32.load8_u (local.get $i)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $open (i32.eq (local.get $c) (i32.const 34)))
        (br_if $skip (i32.or (i32.eq (local.get $c) (i32.const 58)) (i32.le_u (local.get $c) (i32.const 32))))
        (return (call $result (i32.const 1) (i32.const 296) (i32.const 44)))))
    (local.set $start (local.get $i))
    (block $close
      (loop $value
        (if (i32.ge_u (local.get $i) (local.get $end)) (then (return (call $result (i32.const 1) (i32.const 296) (i32.const 44)))))
        (local.set $c (i32.load8_u (local.get $i)))
        (br_if $close (i32.eq (local.get $c) (i32.const 34)))
        (if (i32.eq (local.get $c) (i32.const 92)) (then (return (call $result (i32.const 1) (i32.const 296) (i32.const 44)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $value)))
    (call $read (local.get $start) (i32.sub (local.get $i) (local.get $start)) (i32.const 640))
    ;; ok: the bytes are the output (the host checks they are UTF-8)
    (if (i32.eqz (i32.load8_u (i32.const 640)))
      (then (return (call $result (i32.const 0) (i32.load (i32.const 648)) (i32.load (i32.const 652))))))
    (local.set $tag (i32.load8_u (i32.const 648)))
    ;; denied(denial): "<code>: <message>"
    (if (i32.eqz (local.get $tag))
      (then (return (call $result (i32.const 1)
        (call $join (i32.load (i32.const 656)) (i32.load (i32.const 660)) (i32.load (i32.const 664)) (i32.load (i32.const 668)))
        (i32.add (i32.add (i32.load (i32.const 660)) (i32.load (i32.const 668))) (i32.const 2))))))
    (local.set $name (i32.add (i32.const 384) (i32.mul (local.get $tag) (i32.const 16))))
    (local.set $nlen (i32.load8_u (i32.add (i32.const 512) (local.get $tag))))
    ;; rate-limited(u64) carries no text: its name alone
    (if (i32.eq (local.get $tag) (i32.const 4))
      (then (return (call $result (i32.const 1) (local.get $name) (local.get $nlen)))))
    ;; every other case carries a string: "<case>: <text>"
    (call $result (i32.const 1)
      (call $join (local.get $name) (local.get $nlen) (i32.load (i32.const 656)) (i32.load (i32.const 660)))
      (i32.add (i32.add (local.get $nlen) (i32.load (i32.const 660))) (i32.const 2))))
)
