declare module 'authority:sandbox/types@0.1.0' {
  export interface Denial {
    code: string,
    message: string,
  }
  /**
   * Why the host refused or failed a call. The guest can act on the case:
   * retry after `rate-limited`, stop after `budget-exhausted`, report a
   * `denied` to its caller. Messages never contain secret values.
   */
  export type Error = ErrorDenied | ErrorNotFound | ErrorInvalid | ErrorTooLarge | ErrorRateLimited | ErrorBudgetExhausted | ErrorIo | ErrorTimeout;
  /**
   * The gate refused the call. `code` is stable (for example
   * `E_POLICY_DENY`, `E_CAP_MISSING`, `E_CAP_SCOPE`), `message` says why.
   */
  export interface ErrorDenied {
    tag: 'denied',
    val: Denial,
  }
  /**
   * The file, directory or secret does not exist (or is not visible).
   */
  export interface ErrorNotFound {
    tag: 'not-found',
    val: string,
  }
  /**
   * The arguments are malformed: a relative path, a NUL byte, a URL that
   * does not parse, a header the guest may not set.
   */
  export interface ErrorInvalid {
    tag: 'invalid',
    val: string,
  }
  /**
   * A size cap was hit: file size, request or response body, header size.
   */
  export interface ErrorTooLarge {
    tag: 'too-large',
    val: string,
  }
  /**
   * A rate limit was hit; retry after this many milliseconds.
   */
  export interface ErrorRateLimited {
    tag: 'rate-limited',
    val: bigint,
  }
  /**
   * A run or policy budget is spent (tool calls, host calls, bytes, time).
   */
  export interface ErrorBudgetExhausted {
    tag: 'budget-exhausted',
    val: string,
  }
  /**
   * The operation was allowed but failed in the world (connection refused,
   * disk error, DNS failure).
   */
  export interface ErrorIo {
    tag: 'io',
    val: string,
  }
  /**
   * The operation took longer than its time limit.
   */
  export interface ErrorTimeout {
    tag: 'timeout',
    val: string,
  }
  /**
   * What a tool says about itself. The host reads it once, at registration.
   */
  export interface Description {
    /**
     * `[A-Za-z0-9_-]{1,64}`: valid for every agent framework.
     */
    name: string,
    /**
     * One or two sentences for the model that will call the tool.
     */
    description: string,
    /**
     * JSON Schema (draft 2020-12) of the tool's input, as JSON text.
     */
    inputSchema: string,
  }
}
