/**
 * Rate limits (GCRA) and budgets (reserve, then settle) behind a small async
 * store interface. Knows nothing of policies: the policy hands it numbers.
 * @module
 */
export { parseRate, MAX_RATE_COUNT, type RateSpec } from './rate.ts';
export { gcraStep, type GcraStep } from './gcra.ts';
export type { LimitStore, RateRequest, RateResult, CounterRequest, WindowRequest, ReserveResult } from './store.ts';
export { MemoryLimitStore, type MemoryLimitStoreOptions } from './memory-store.ts';
export {
  Limiter,
  BUDGET_DIMS,
  type BudgetDim,
  type BudgetLimits,
  type RateLimits,
  type LimiterConfig,
  type LimitContext,
  type MeteredCall,
  type Allowance,
  type Reservation,
  type Usage,
  type Admission,
  type TokenRate,
} from './limiter.ts';
