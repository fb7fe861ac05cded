/**
 * `authority serve`: MCP over Streamable HTTP with bearer-token access,
 * health, readiness and Prometheus metrics.
 * @module
 */
export { startServe, type ServeOptions, type ServeHandle } from './server.ts';
export { loadAccessFile, parseAccess, authenticate, addBearerToken, hashBearer, BEARER_PREFIX, type Access, type AccessEntry } from './access.ts';
export { createMetrics, type ServeMetrics, type InvocationFacts } from './metrics.ts';
