/**
 * Tools' input schemas, compiled once per component digest: where an input
 * does not match, in words and as the schema path (an invocation's stage 1).
 * @module
 */
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { AuthorityError, ErrorCode } from '../errors.ts';
import type { ToolInfo } from './registry.ts';

export class InputSchemas {
  readonly #validators = new Map<string, ValidateFunction>();
  readonly #ajv = new Ajv2020({ strict: false, allErrors: false, validateFormats: false });

  /** Forget a digest's compiled schema (the tool was registered again). */
  forget(digest: string): void {
    this.#validators.delete(digest);
  }

  /** Where `input` does not match the tool's input schema, or undefined when it does. */
  check(tool: ToolInfo, input: unknown): { reason: string; rule?: string | undefined } | undefined {
    let v = this.#validators.get(tool.digest);
    if (v === undefined) {
      try {
        v = this.#ajv.compile(tool.inputSchema);
      } catch (e) {
        throw new AuthorityError(ErrorCode.COMPONENT_INVALID, `the input schema of ${tool.name} does not compile: ${(e as Error).message}`, { cause: e });
      }
      this.#validators.set(tool.digest, v);
    }
    if (v(input)) return undefined;
    const first = v.errors?.[0];
    const where = first?.instancePath ? `input${first.instancePath.replaceAll('/', '.')}` : 'input';
    return { reason: `${where}: ${first?.message ?? 'does not match the input schema'}`, rule: first?.schemaPath };
  }
}
