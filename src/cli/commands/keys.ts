/**
 * `authority keys new|rotate|list|remove`: the HMAC keyring in the data folder.
 */
import { existsSync } from 'node:fs';
import { AuthorityError, ErrorCode } from '../../errors.ts';
import { dataPaths, resolveDataDir } from '../../data-dir.ts';
import { Keyring, KEYS_ENV, type KeyInfo } from '../../capability/index.ts';
import { emit, parse, usageError } from '../output.ts';
import { EXIT_OK, type CliIO, type Command } from '../types.ts';
import { summaryOf } from './summaries.ts';

const USAGE = `usage: authority keys <subcommand> [--data-dir DIR] [--json]

Manage the HMAC keys that sign capability tokens. The keyring lives in the
data folder (keys.json, mode 0600). Key material is never printed.

subcommands:
  new                      create the keyring with one active key (refuses if one exists)
  rotate [--drop-retired]  add a new active key; the old one stays, verify-only
                           (--drop-retired also removes keys retired earlier)
  list                     ids, statuses and creation times
  remove ID                remove a key: tokens it signed stop verifying (E_CAP_UNKNOWN_KEY)

When ${KEYS_ENV} is set, tokens are issued and verified with those keys instead;
\`keys list\` then shows them, and the other subcommands still edit the data folder.
`;

const showKey = (k: KeyInfo): { id: string; status: string; createdAt: string } => ({
  id: k.id,
  status: k.status,
  createdAt: new Date(k.createdAt).toISOString(),
});

const table = (keys: readonly KeyInfo[]): string =>
  keys.map((k) => `${k.id}  ${k.status.padEnd(7)}  created ${new Date(k.createdAt).toISOString()}`).join('\n');

function warnEnv(io: CliIO): void {
  if ((io.env[KEYS_ENV] ?? '').trim() !== '') io.err(`authority: note: ${KEYS_ENV} is set, so tokens are issued and verified with those keys, not this keyring\n`);
}

export const keysCommand: Command = {
  name: 'keys',
  summary: summaryOf('keys'),
  usage: USAGE,
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values, positionals } = parse({
      args: argv,
      options: {
        'data-dir': { type: 'string' },
        'drop-retired': { type: 'boolean' },
        json: { type: 'boolean' },
      },
      allowPositionals: true,
      strict: true,
    });
    const json = values.json === true;
    const [sub, ...rest] = positionals;
    const dataDir = resolveDataDir(values['data-dir'], io.env, io.cwd);
    const path = dataPaths(dataDir).keyring;
    const expectArgs = (n: number): void => {
      if (rest.length !== n) throw usageError(`keys ${sub}: expected ${n === 0 ? 'no arguments' : `${n} argument(s)`}\n\n${USAGE}`);
    };
    if (values['drop-retired'] === true && sub !== 'rotate') throw usageError('--drop-retired goes with `keys rotate`');

    switch (sub) {
      case 'new': {
        expectArgs(0);
        if (existsSync(path)) {
          throw new AuthorityError(ErrorCode.CONFIG, `a keyring already exists at ${path}; use \`authority keys rotate\` to add a key`, { data: { path } });
        }
        const ring = Keyring.fromDataDir(dataDir, { create: true });
        const key = ring.list()[0] as KeyInfo;
        io.log.info({ keyId: key.id, path }, 'keyring created');
        emit(io, json, { ok: true, path, key: showKey(key) }, `created keyring ${path}\nactive key: ${key.id}`);
        warnEnv(io);
        return EXIT_OK;
      }
      case 'rotate': {
        expectArgs(0);
        const ring = Keyring.fromDataDir(dataDir);
        const before = ring.list();
        const key = ring.rotate({ dropRetired: values['drop-retired'] === true });
        const after = ring.list();
        const removed = before.filter((k) => !ring.has(k.id)).map((k) => k.id);
        io.log.info({ keyId: key.id, removed, path }, 'keyring rotated');
        emit(
          io,
          json,
          { ok: true, path, active: key.id, removed, keys: after.map(showKey) },
          `active key: ${key.id}${removed.length > 0 ? `\nremoved: ${removed.join(', ')}` : ''}\n${table(after)}`,
        );
        warnEnv(io);
        return EXIT_OK;
      }
      case 'list': {
        expectArgs(0);
        const ring = Keyring.load({ dataDir, env: io.env });
        const keys = ring.list();
        emit(io, json, { ok: true, source: ring.source, path: ring.path, keys: keys.map(showKey) }, table(keys));
        return EXIT_OK;
      }
      case 'remove': {
        expectArgs(1);
        const id = rest[0] as string;
        const ring = Keyring.fromDataDir(dataDir);
        if (!ring.has(id)) throw usageError(`keys remove: no key "${id}" in ${path}`);
        ring.remove(id);
        io.log.info({ keyId: id, path }, 'key removed');
        emit(io, json, { ok: true, path, removed: id, keys: ring.list().map(showKey) }, `removed key ${id}\n${table(ring.list())}`);
        warnEnv(io);
        return EXIT_OK;
      }
      default:
        throw usageError(sub === undefined ? `keys: a subcommand is required\n\n${USAGE}` : `keys: unknown subcommand "${sub}"\n\n${USAGE}`);
    }
  },
};
