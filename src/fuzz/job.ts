/**
 * The entry of a fuzz job (a worker thread started by jobs.ts).
 * @module
 */
import { jobMain } from './jobs.ts';
import { runFuzz } from './run.ts';

await jobMain(runFuzz);
