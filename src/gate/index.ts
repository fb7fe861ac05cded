/**
 * The gate: the only function that answers a guest's host call.
 * @module
 */
export { Gate, denialToGuest, type AuditSink, type Denial, type GateDeps, type RunContext } from './gate.ts';
export { decode, type CanonicalCall } from './decode.ts';
export { HOST_OPS, allow, deny, placeholdersIn, type CapabilityKind, type Decision, type GuestError, type Header, type HostCall, type HostOp, type HostReply } from '../host-call.ts';
