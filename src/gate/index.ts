/**
 * The gate: the only function that answers a guest's host call, and the one
 * that admits an invocation.
 * @module
 */
export { Gate, denialToGuest } from './gate.ts';
export type { ApprovalDecision, ApprovalRequest, Approver, AuditSink, Denial, GateDeps, RunContext, RunSubject } from './context.ts';
export { DEFAULT_POLICY_NAME, endRecord, refusalRecord, runBase, startRecord, type Admission, type AdmissionRequest } from './admission.ts';
export { decode, OPS, type CanonicalCall, type OpSpec } from './ops.ts';
export { HOST_OPS, allow, deny, placeholdersIn, type CapabilityKind, type Decision, type GuestError, type Header, type HostCall, type HostOp, type HostReply } from '../host-call.ts';
