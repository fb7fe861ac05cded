// write-file: replaces one file atomically through the host's fs interface.
import { writeFile } from 'authority:sandbox/fs@0.1.0';
import { hostError } from '../_shared/host-error.js';

export function describe() {
  return {
    name: 'write-file',
    description: 'Writes text to a file, replacing it atomically.',
    inputSchema: JSON.stringify({
      type: 'object',
      properties: {
        path: { type: 'string', description: 'Absolute path of the file.' },
        content: { type: 'string', description: 'The text to write.' },
      },
      required: ['path', 'content'],
      additionalProperties: false,
    }),
  };
}


export function run(input) {
  const { path, content } = JSON.parse(input);
  if (typeof path !== 'string' || typeof content !== 'string') throw 'input.path and input.content must be strings';
  const bytes = new TextEncoder().encode(content);
  try {
    writeFile(path, bytes);
  } catch (e) {
    throw hostError(e);
  }
  return JSON.stringify({ path, bytes: bytes.length });
}
