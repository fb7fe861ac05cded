import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

// Every name each entry point of the package exports, types included, with
// whether it is a value or only a type. Adding, removing or turning a type into
// a value is a change of the public contract: make it here, on purpose.
const PINNED: Record<string, readonly string[]> = {
  '.': [
    'ApprovalDecision:type',
    'ApprovalRequest:type',
    'Approver:type',
    'AuditEntry:type',
    'AuditLog:value',
    'AuditRecord:type',
    'AuditVerifyReport:type',
    'AuthorityError:value',
    'AuthorityErrorOptions:type',
    'BuildResult:type',
    'CapabilityDecision:type',
    'CapabilityKind:type',
    'CapabilityRequest:type',
    'CaveatInput:type',
    'DEFAULT_DATA_DIR:value',
    'DEFAULT_LIMITS:value',
    'DEFAULT_POLICY_NAME:value',
    'Decision:type',
    'Denial:type',
    'ErrorCode:value',
    'Fleet:value',
    'FleetHalt:type',
    'FleetOptions:type',
    'FleetRevocation:type',
    'FleetState:type',
    'HOST_OPS:value',
    'HostCall:type',
    'HostOp:type',
    'InvokeOptions:type',
    'InvokeResult:type',
    'InvokeStats:type',
    'IssueClaims:type',
    'Keyring:value',
    'LimitStore:type',
    'LoadedPolicy:type',
    'MemoryLimitStore:value',
    'Policy:value',
    'PolicyDecision:type',
    'PolicyRequest:type',
    'PoolOptions:type',
    'RedisClient:type',
    'RedisConnectionOptions:type',
    'RedisLimitStore:value',
    'RedisLimitStoreOptions:type',
    'RegisterOptions:type',
    'RevocationList:value',
    'Runtime:value',
    'RuntimeEvents:type',
    'RuntimeOptions:type',
    'SecretStore:value',
    'SecretStoreOptions:type',
    'TOOL_NAME_RE:value',
    'TokenInfo:type',
    'ToolInfo:type',
    'ToolLimits:type',
    'VerifiedToken:type',
    'attenuateToken:value',
    'buildTool:value',
    'checkCapability:value',
    'connectRedis:value',
    'createRuntime:value',
    'dataPaths:value',
    'inspectToken:value',
    'isErrorCode:value',
    'issueToken:value',
    'loadPolicy:value',
    'loadPolicyFile:value',
    'parsePolicy:value',
    'parseToken:value',
    'prepareGrants:value',
    'proveRecord:value',
    'readAuditRecords:value',
    'resolveDataDir:value',
    'toAuthorityError:value',
    'verifyAudit:value',
    'verifyAuditProof:value',
    'verifyToken:value',
  ],
  './ai-sdk': [
    'HOST_FAULT_CODES:value',
    'ToolCallFailure:type',
    'ToolCallResult:type',
    'ToolCallSuccess:type',
    'ToolDescriptor:type',
    'ToolSession:value',
    'ToolSessionOptions:type',
    'aiSdkTool:value',
    'aiSdkTools:value',
    'failureText:value',
    'toolSession:value',
  ],
  './fuzz': [
    'ALL_OPS:value',
    'AbiOp:type',
    'AbiProgram:type',
    'CaveatSpec:type',
    'FuzzFailure:type',
    'FuzzOptions:type',
    'FuzzReport:type',
    'INVARIANTS:value',
    'LAYERS:value',
    'Layer:type',
    'Mutation:type',
    'Op:type',
    'PropertyResult:type',
    'RegressionCase:type',
    'STRICTER:value',
    'Scenario:type',
    'Step:type',
    'TARGETS:value',
    'Target:type',
    'TokenSpec:type',
    'WorkItem:type',
    'caseFromJson:value',
    'caseToJson:value',
    'replayCommand:value',
    'replayRegressions:value',
    'runFuzz:value',
    'workItems:value',
  ],
  './langchain': [
    'HOST_FAULT_CODES:value',
    'ToolCallFailure:type',
    'ToolCallResult:type',
    'ToolCallSuccess:type',
    'ToolDescriptor:type',
    'ToolSession:value',
    'ToolSessionOptions:type',
    'failureText:value',
    'langchainTool:value',
    'langchainTools:value',
    'toolSession:value',
  ],
  './mcp': [
    'DEFAULT_GRANT_TTL:value',
    'GrantClaim:type',
    'HOST_FAULT_CODES:value',
    'MCP_META_KEY:value',
    'McpServerOptions:type',
    'McpSession:value',
    'ToolCallFailure:type',
    'ToolCallResult:type',
    'ToolCallSuccess:type',
    'ToolDescriptor:type',
    'ToolFolderChanges:type',
    'ToolFolderOptions:type',
    'ToolFolders:value',
    'ToolSession:value',
    'ToolSessionOptions:type',
    'createMcpServer:value',
    'failureText:value',
    'loadGrantsFile:value',
    'mintGrants:value',
    'parseGrants:value',
    'serveMcpStdio:value',
    'toCallToolResult:value',
    'toMcpTool:value',
    'toolSession:value',
    'watchToolFolders:value',
  ],
  './openai': [
    'Dispatched:type',
    'HOST_FAULT_CODES:value',
    'OpenAIToolOptions:type',
    'OpenAITools:value',
    'StrictSchema:type',
    'ToolCallFailure:type',
    'ToolCallResult:type',
    'ToolCallSuccess:type',
    'ToolDescriptor:type',
    'ToolSession:value',
    'ToolSessionOptions:type',
    'failureText:value',
    'openaiTools:value',
    'toStrictSchema:value',
    'toolSession:value',
  ],
  './serve': [
    'Access:type',
    'AccessEntry:type',
    'BEARER_PREFIX:value',
    'InvocationFacts:type',
    'ServeHandle:type',
    'ServeMetrics:type',
    'ServeOptions:type',
    'addBearerToken:value',
    'authenticate:value',
    'createMetrics:value',
    'hashBearer:value',
    'loadAccessFile:value',
    'parseAccess:value',
    'startServe:value',
  ],
};

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: Record<string, string | { source?: string }> };
const entries = Object.entries(pkg.exports).flatMap(([sub, target]) => (typeof target === 'object' && target.source !== undefined ? [[sub, target.source] as const] : []));

test('every sub-path of the package has a pinned export list', () => {
  assert.deepEqual(entries.map(([sub]) => sub).sort(), Object.keys(PINNED).sort());
});

test('each entry point exports exactly its pinned names, types included', () => {
  const files = entries.map(([, source]) => join(root, source));
  const program = ts.createProgram(files, {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2023,
    allowImportingTsExtensions: true,
    noEmit: true,
    skipLibCheck: true,
    strict: true,
  });
  const checker = program.getTypeChecker();
  for (const [sub, source] of entries) {
    const file = program.getSourceFile(join(root, source));
    assert.ok(file !== undefined, source);
    const mod = checker.getSymbolAtLocation(file);
    assert.ok(mod !== undefined, `${source} is a module`);
    const names = checker
      .getExportsOfModule(mod)
      .map((s) => {
        const target = s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s;
        return `${s.name}:${target.flags & ts.SymbolFlags.Value ? 'value' : 'type'}`;
      })
      .sort();
    assert.deepEqual(names, PINNED[sub], `the exports of ${sub} (${source})`);
  }
});
