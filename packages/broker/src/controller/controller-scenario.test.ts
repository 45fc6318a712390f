// Runs every packages/broker/testdata/controller/*.txt scenario and compares the regenerated
// output with the file. `REWRITE=1 ./node_modules/.bin/vitest run controller-scenario` rewrites
// the files instead (review the diff before committing it).
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runControllerScenario } from './controller-scenario.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'testdata', 'controller');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.txt'))
  .sort();

describe('controller scenarios (testdata/controller)', () => {
  it('has scenario files', () => {
    expect(files.length).toBeGreaterThanOrEqual(3);
  });
  for (const file of files) {
    it(file, () => {
      const path = join(dir, file);
      const source = readFileSync(path, 'utf8');
      const output = runControllerScenario(source);
      if (process.env.REWRITE === '1') {
        writeFileSync(path, output);
        return;
      }
      expect(output).toBe(source);
      // A planned record that did not apply is a planner bug, in every scenario.
      expect(output).not.toContain('PLANNER BUG');
    });
  }
});
