// read-file: reads one file through the host's fs interface. Which files it
// may read is decided by the gate, never by the tool.
import { readFile } from 'authority:sandbox/fs@0.1.0';
import { host } from 'authority-sandbox/guest';

export function describe() {
  return {
    name: 'read-file',
    description: 'Reads a text file and returns its content.',
    inputSchema: JSON.stringify({
      type: 'object',
      properties: { path: { type: 'string', description: 'Absolute path of the file.' } },
      required: ['path'],
      additionalProperties: false,
    }),
  };
}

export function run(input) {
  const { path } = JSON.parse(input);
  if (typeof path !== 'string') throw 'input.path must be a string';
  // host() turns a refusal into this tool's error result ("E_CAP_SCOPE: ..."), not a trap.
  const bytes = host(() => readFile(path));
  return JSON.stringify({ path, bytes: bytes.length, content: new TextDecoder().decode(bytes) });
}
