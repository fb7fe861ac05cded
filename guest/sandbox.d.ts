// Generated from wit/sandbox.wit by tools/guest-types.ts: the modules a tool imports.
/// <reference path="./interfaces/authority-sandbox-fs.d.ts" />
/// <reference path="./interfaces/authority-sandbox-http.d.ts" />
/// <reference path="./interfaces/authority-sandbox-secrets.d.ts" />
/// <reference path="./interfaces/authority-sandbox-types.d.ts" />
