/**
 * How many invocations of one tool run at once: a semaphore with a bounded
 * queue; past the queue a run is refused with E_OVERLOADED.
 * @module
 */
import { AuthorityError, ErrorCode } from '../errors.ts';

export class Slots {
  #busy = 0;
  readonly #waiting: Array<() => void> = [];
  constructor(
    readonly max: number,
    readonly maxQueue: number,
  ) {}

  async take(tool: string): Promise<void> {
    if (this.#busy < this.max) {
      this.#busy++;
      return;
    }
    if (this.#waiting.length >= this.maxQueue) {
      throw new AuthorityError(ErrorCode.OVERLOADED, `tool ${tool} is at its concurrency limit (${this.max} running, ${this.#waiting.length} waiting)`, {
        data: { tool, running: this.#busy, queued: this.#waiting.length },
      });
    }
    await new Promise<void>((res) => this.#waiting.push(res));
    this.#busy++;
  }

  release(): void {
    this.#busy--;
    this.#waiting.shift()?.();
  }
}
