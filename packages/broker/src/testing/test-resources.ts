// Temporary directories and open handles a test file creates, cleaned up by the test runner's
// hooks (passed in, so this module does not depend on the runner): handles are closed after
// each test, newest first; directories are removed after the file.
import { rmSync } from 'node:fs';

type Hook = (fn: () => unknown) => void;

export interface TestResources {
  /** Directories to remove once the file's tests are done. */
  readonly dirs: string[];
  /** Brokers, clients, logs: closed after each test, newest first. */
  readonly open: Array<{ close(): unknown }>;
}

export function testResources(hooks: { afterEach: Hook; afterAll: Hook }): TestResources {
  const resources: TestResources = { dirs: [], open: [] };
  hooks.afterEach(async () => {
    for (const o of resources.open.splice(0).reverse()) await o.close();
  });
  hooks.afterAll(() => {
    for (const d of resources.dirs) rmSync(d, { recursive: true, force: true });
  });
  return resources;
}
