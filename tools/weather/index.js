// weather: calls a weather API that needs a key. The tool never holds the
// key: it writes a {{secret:WEATHER_KEY}} placeholder in a header, and the
// host fills it in only for a destination the policy binds that secret to.
import { fetch } from 'authority:sandbox/http@0.1.0';
import { hostError } from '../_shared/host-error.js';

export function describe() {
  return {
    name: 'weather',
    description: 'Current weather for a city, from the configured weather API.',
    inputSchema: JSON.stringify({
      type: 'object',
      properties: {
        city: { type: 'string', description: 'City name, e.g. "Lisbon".' },
        endpoint: { type: 'string', description: 'Base URL of the weather API.', default: 'https://api.weather.test' },
      },
      required: ['city'],
      additionalProperties: false,
    }),
  };
}


export function run(input) {
  const { city, endpoint = 'https://api.weather.test' } = JSON.parse(input);
  if (typeof city !== 'string' || city.length === 0) throw 'input.city must be a non-empty string';
  let response;
  try {
    response = fetch({
      method: 'GET',
      url: `${endpoint.replace(/\/+$/, '')}/v1/current?city=${encodeURIComponent(city)}`,
      headers: [
        ['accept', 'application/json'],
        ['authorization', 'Bearer {{secret:WEATHER_KEY}}'],
      ],
      body: undefined,
    });
  } catch (e) {
    throw hostError(e);
  }
  const text = new TextDecoder().decode(response.body);
  if (response.status !== 200) throw `weather API answered ${response.status}: ${text.slice(0, 200)}`;
  return text;
}
