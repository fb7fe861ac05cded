/**
 * Embedding: the framework-free parts every adapter shares (the tool
 * descriptor and session, grants files, watched tool folders). Each
 * framework's adapter is its own sub-path export (`authority-sandbox/mcp`,
 * `/ai-sdk`, `/langchain`, `/openai`), so a framework is only loaded by the
 * code that uses it. Nothing in the core imports this folder.
 * @module
 */
export {
  ToolSession,
  toolSession,
  sessionOf,
  failureText,
  toFailure,
  parseOutput,
  HOST_FAULT_CODES,
  type AuditRange,
  type JsonSchema,
  type ToolCallFailure,
  type ToolCallResult,
  type ToolCallSuccess,
  type ToolDescriptor,
  type ToolSessionOptions,
} from './descriptor.ts';
export { parseGrants, loadGrantsFile, mintGrants, DEFAULT_GRANT_TTL, MAX_GRANTS_FILE_BYTES, type GrantClaim } from './grants.ts';
export { watchToolFolders, ToolFolders, type ToolFolderOptions, type ToolFolderChanges } from './tool-folders.ts';
