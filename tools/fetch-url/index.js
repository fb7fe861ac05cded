// fetch-url: one HTTP request through the host's http interface. The host
// checks the destination (as parsed and as resolved), follows redirects
// itself, and caps sizes; the tool sees only the final response.
import { fetch } from 'authority:sandbox/http@0.1.0';
import { hostError } from '../_shared/host-error.js';

export function describe() {
  return {
    name: 'fetch-url',
    description: 'Fetches a URL over HTTP(S) and returns the status, headers and body as text.',
    inputSchema: JSON.stringify({
      type: 'object',
      properties: {
        url: { type: 'string', description: 'An absolute http: or https: URL.' },
        method: { type: 'string', enum: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD'], default: 'GET' },
        headers: { type: 'object', additionalProperties: { type: 'string' } },
        body: { type: 'string' },
      },
      required: ['url'],
      additionalProperties: false,
    }),
  };
}


export function run(input) {
  const { url, method = 'GET', headers = {}, body } = JSON.parse(input);
  if (typeof url !== 'string') throw 'input.url must be a string';
  const request = {
    method,
    url,
    headers: Object.entries(headers).map(([k, v]) => [k, String(v)]),
    body: body === undefined ? undefined : new TextEncoder().encode(String(body)),
  };
  let response;
  try {
    response = fetch(request);
  } catch (e) {
    throw hostError(e);
  }
  return JSON.stringify({
    status: response.status,
    headers: Object.fromEntries(response.headers),
    body: new TextDecoder().decode(response.body),
  });
}
