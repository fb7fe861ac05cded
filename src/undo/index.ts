/**
 * Reversible file changes: pre-images kept before fs.write and fs.remove act,
 * and undo of a run's changes from the audit log. See docs/console.md.
 * @module
 */
export { PreImageStore, ABSENT, DEFAULT_MAX_PRE_IMAGE_BYTES, contentHash, type PruneReport } from './store.ts';
export { capturePreImage, postImageOf } from './capture.ts';
export { planUndo, undoRun, type UndoDeps, type UndoOptions, type UndoPlan, type UndoResult, type UndoStep } from './undo.ts';
