/**
 * Registering components: digest, import check, self-description, compile cache.
 * @module
 */
export { Registry, DEFAULT_LIMITS, TOOL_NAME_RE, checkImports, toInfo, validLimits, type Describer, type RegisterOptions, type RegisteredTool, type ToolInfo, type ToolLimits } from './registry.ts';
export { compileComponent, sha256Hex, type CompiledTool, type CompileOptions } from './compile.ts';
export { componentImports, capCoreMemories, isComponent, type ComponentImport, type ImportKind, type MemoryLimits } from './binary.ts';
export { buildTool, sourceImports, toolWorld, WIT_DIR, SANDBOX_INTERFACES, COMPONENTIZE_PACKAGE, type BuildResult, type SandboxInterface } from './build.ts';
export { InputSchemas } from './input-schema.ts';
export { checkProvenance, type Provenance, type ProvenanceResult } from './provenance.ts';
