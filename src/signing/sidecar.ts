/**
 * A local component's signature lives beside it: `<file>.sig` holds one
 * Sigstore bundle (JSON), or a JSON array of bundles when several keys signed.
 * @module
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { MAX_BUNDLE_BYTES, parseBundle, type SignatureBundle } from './envelope.ts';

export const SIDECAR_SUFFIX = '.sig';
const MAX_SIDECAR_BUNDLES = 16;

/** The bundles beside `file`; none when there is no `.sig` file. A malformed file is E_SIGNATURE_INVALID. */
export function readSidecar(file: string): SignatureBundle[] {
  const path = file + SIDECAR_SUFFIX;
  if (!existsSync(path)) return [];
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new AuthorityError(ErrorCode.IO, `cannot read ${path}: ${(e as Error).message}`, { data: { file: path }, cause: e });
  }
  if (text.length > MAX_BUNDLE_BYTES * MAX_SIDECAR_BUNDLES) throw new AuthorityError(ErrorCode.SIGNATURE_INVALID, `${path}: too large for a signature file`, { data: { where: path } });
  const trimmed = text.trimStart();
  if (!trimmed.startsWith('[')) return [parseBundle(text, path)];
  let list: unknown;
  try {
    list = JSON.parse(text);
  } catch (e) {
    throw new AuthorityError(ErrorCode.SIGNATURE_INVALID, `${path}: not JSON: ${(e as Error).message}`, { data: { where: path } });
  }
  if (!Array.isArray(list) || list.length > MAX_SIDECAR_BUNDLES) throw new AuthorityError(ErrorCode.SIGNATURE_INVALID, `${path}: expected a bundle or a list of at most ${MAX_SIDECAR_BUNDLES}`, { data: { where: path } });
  return list.map((b, i) => parseBundle(JSON.stringify(b), `${path}[${i}]`));
}

/**
 * Add a bundle to `<file>.sig` (a bundle by the same key replaces the old
 * one). Written to a temp file and renamed: never half a signature file.
 */
export function writeSidecar(file: string, bundle: SignatureBundle): string {
  const path = file + SIDECAR_SUFFIX;
  const hint = bundle.verificationMaterial.publicKey.hint;
  const kept = readSidecar(file).filter((b) => b.verificationMaterial.publicKey.hint !== hint);
  const all = [...kept, bundle];
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(all.length === 1 ? all[0] : all, null, 2) + '\n');
  renameSync(tmp, path);
  return path;
}
