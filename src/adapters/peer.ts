/**
 * Loading a framework an adapter needs. Each framework is an optional peer
 * dependency, so an application that imports an adapter without having
 * installed its framework gets one clear error naming what to install,
 * rather than Node's "Cannot find package".
 * @module
 */
import { AuthorityError, ErrorCode } from '../errors.ts';

/** `load()` (an `import()` of `peer`), or E_CONFIG saying to install `peer` when it is missing. */
export async function loadPeer<T>(peer: string, adapter: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (e) {
    const err = e as { code?: unknown; message?: unknown } | null;
    if (err?.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes(`'${peer}'`)) {
      throw new AuthorityError(ErrorCode.CONFIG, `authority-sandbox/${adapter} needs ${peer}, an optional peer dependency that is not installed: install \`${peer}\` (npm install ${peer})`, {
        cause: e,
        data: { peer },
      });
    }
    throw e;
  }
}
