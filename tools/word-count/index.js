// word-count: a pure tool. It imports nothing from the host, so whatever
// grants it is given, it can touch nothing.

export function describe() {
  return {
    name: 'word-count',
    description: 'Counts the words, lines and characters of a text.',
    inputSchema: JSON.stringify({
      type: 'object',
      properties: { text: { type: 'string', description: 'The text to count.' } },
      required: ['text'],
      additionalProperties: false,
    }),
  };
}

export function run(input) {
  let text;
  try {
    ({ text } = JSON.parse(input));
  } catch {
    throw 'input must be a JSON object';
  }
  if (typeof text !== 'string') throw 'input.text must be a string';
  const words = text.split(/\s+/).filter((w) => w.length > 0).length;
  const lines = text.length === 0 ? 0 : text.split('\n').length;
  return JSON.stringify({ words, lines, characters: [...text].length });
}
