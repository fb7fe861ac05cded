// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

const networkModules = ['node:net', 'node:tls', 'node:http', 'node:https', 'node:http2', 'node:dns', 'node:dgram', 'undici'];

export default tseslint.config(
  // guest/interfaces/ is generated from the WIT by jco (tools/guest-types.ts; a test keeps it current).
  { ignores: ['node_modules/', 'dist/', 'build/', '.authority/', 'coverage/', 'scratch/', 'guest/interfaces/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2023, sourceType: 'module', globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-restricted-syntax': [
        'error',
        { selector: "CallExpression[callee.object.name='process'][callee.property.name='exit']", message: 'Library code never exits the process; the CLI sets process.exitCode.' },
        { selector: 'TSEnumDeclaration', message: 'Use an `as const` object, not a TS enum.' },
      ],
    },
  },
  {
    // Only src/host/ touches the network for a guest; everything else reaches it through the gate.
    // src/serve/ is the server agents call (it listens; no guest reaches the network through it).
    files: ['src/**/*.ts'],
    // The console serves the operator on loopback; it never acts for a guest. src/oci/ is the
    // operator's registry client (push, pull): no guest can reach it.
    ignores: ['src/host/**', 'src/cli/**', 'src/demo/**', 'src/console/**', 'src/serve/**', 'src/oci/**'],
    rules: {
      'no-restricted-imports': ['error', { paths: networkModules.map((name) => ({ name, message: 'Network access belongs in src/host/, behind the gate.' })) }],
      'no-restricted-globals': ['error', { name: 'fetch', message: 'Network access belongs in src/host/, behind the gate.' }],
      'no-console': 'error',
    },
  },
  {
    // The console's page runs in the browser.
    files: ['src/console/web/**/*.js'],
    languageOptions: { globals: { ...globals.browser } },
  },
  {
    // The authority:sandbox modules are ambient declarations (`declare module 'authority:sandbox/fs@0.1.0'`): only a reference brings them in.
    files: ['guest/*.d.ts'],
    rules: { '@typescript-eslint/triple-slash-reference': 'off' },
  },
);
