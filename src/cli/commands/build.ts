import { writeFileSync, renameSync } from 'node:fs';
import { resolve } from 'node:path';
import { buildTool } from '../../registry/build.ts';
import { sha256Hex } from '../../registry/compile.ts';
import { emit, parse, progress, usageError } from '../output.ts';
import { EXIT_OK, type Command } from '../types.ts';
import { summaryOf } from './summaries.ts';

export const buildCommand: Command = {
  name: 'build',
  summary: summaryOf('build'),
  usage: `usage: authority build <tool-source> -o <tool.wasm> [--json]

Builds a tool into a WebAssembly component that imports only the
authority:sandbox interfaces its source uses (no WASI at all).

  <tool-source>   index.js / .mjs (componentize-js, StarlingMonkey) or .wat
  -o, --out FILE  where to write the component
  --json          print {"out", "digest", "bytes", "imports"} on stdout
`,
  async run(argv, io) {
    const { values, positionals } = parse({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: { out: { type: 'string', short: 'o' }, json: { type: 'boolean', default: false } },
    });
    if (positionals.length !== 1) throw usageError('build needs exactly one source file (see authority build --help)');
    if (values.out === undefined) throw usageError('build needs -o <tool.wasm>');
    const source = resolve(io.cwd, positionals[0] as string);
    const out = resolve(io.cwd, values.out);
    const shown = progress(io, `building ${source}`, 0);
    let built: Awaited<ReturnType<typeof buildTool>>;
    try {
      built = await buildTool(source);
    } finally {
      shown.done();
    }
    const { component, imports, language } = built;
    const tmp = `${out}.${process.pid}.tmp`;
    writeFileSync(tmp, component);
    renameSync(tmp, out);
    const digest = sha256Hex(component);
    emit(io, values.json, { ok: true, out, digest, bytes: component.length, imports, language }, `${out}\n  ${component.length} bytes, sha256 ${digest}\n  imports: ${imports.length ? imports.map((i) => `authority:sandbox/${i}`).join(', ') : 'none'}`);
    return EXIT_OK;
  },
};
