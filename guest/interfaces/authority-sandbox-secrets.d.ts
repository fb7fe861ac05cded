/// <reference path="./authority-sandbox-types.d.ts" />
declare module 'authority:sandbox/secrets@0.1.0' {
  /**
   * The value of a secret. Prefer a `{{secret:NAME}}` placeholder in an
   * http header: then the tool never sees the value at all. An outgoing
   * request that contains a secret's value is refused unless the policy binds
   * that secret to the destination; the value is redacted from responses and
   * from the tool's output.
   */
  export function get(name: string): string;
  export type Error = import('authority:sandbox/types@0.1.0').Error;
}
