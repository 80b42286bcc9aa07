/**
 * Runs tasks one at a time, in call order. The layout's index.json is read-modify-written as a
 * whole, so two concurrent mutations would otherwise lose one of the updates.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    // A failed task must not poison the ones queued after it.
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** Settles once every task queued so far has finished. */
  async idle(): Promise<void> {
    await this.tail;
  }
}
