const secret = Symbol("redacted");

/**
 * A secret that refuses to be printed: `toString`, `toJSON` and `util.inspect` all show
 * `[redacted]`, so a secret that slips into a log line or an API body leaks nothing.
 * Read it only where it is used, with `reveal()`.
 */
export class Redacted<T = string> {
  readonly #value: T;
  constructor(value: T) {
    this.#value = value;
  }
  reveal(): T {
    return this.#value;
  }
  toString(): string {
    return "[redacted]";
  }
  toJSON(): string {
    return "[redacted]";
  }
  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return "[redacted]";
  }
  get [secret](): true {
    return true;
  }
}
