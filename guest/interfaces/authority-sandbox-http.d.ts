/// <reference path="./authority-sandbox-types.d.ts" />
declare module 'authority:sandbox/http@0.1.0' {
  /**
   * Send one request and read the whole response, up to the caps.
   */
  export function fetch(req: Request): Response;
  export type Error = import('authority:sandbox/types@0.1.0').Error;
  /**
   * A header as a name and a value. Names are case-insensitive. The guest may
   * not set `host`, `connection`, `content-length`, `transfer-encoding`,
   * `upgrade`, `te`, `trailer`, `keep-alive`, `expect`, `proxy-*`: such a
   * request is refused as `invalid`. A value may hold a `{{secret:NAME}}`
   * placeholder, which the host fills in only for a destination the policy
   * binds NAME to.
   */
  export type Header = [string, string];
  export interface Request {
    /**
     * An HTTP method token: GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS.
     */
    method: string,
    /**
     * An absolute `http:` or `https:` URL, without userinfo.
     */
    url: string,
    headers: Array<Header>,
    body?: Uint8Array,
  }
  export interface Response {
    status: number,
    headers: Array<Header>,
    body: Uint8Array,
  }
}
