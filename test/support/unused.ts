/**
 * A dependency a unit test's path never reaches: any use throws, naming it, so a test that
 * starts needing it fails loudly instead of passing on a stand-in.
 */
export function unused<T extends object>(name: string): T {
  return new Proxy({} as T, {
    get(_target, key) {
      throw new Error(`${name}.${String(key)} was used, but this test gave no ${name}`);
    },
  });
}
