// The scripted scenario files (packages/broker/testdata/*/*.txt): lines starting with "> " are
// commands; the lines after each, up to the next command, comment (#) or blank line, are its
// expected output. Shared by the controller and consumer-group scenario drivers.

/**
 * Re-runs every command of a scenario file through `run` and returns the file with fresh
 * outputs in place of the old ones (the test compares it with the file; REWRITE=1 saves it).
 */
export function rerunScenario(source: string, run: (command: string) => readonly string[]): string {
  const lines = source.split('\n');
  const result: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    result.push(line);
    if (!line.startsWith('> ')) continue;
    result.push(...run(line.slice(2)));
    // Skip the old expected output up to the next command, comment or blank line.
    while (i + 1 < lines.length && !/^(> |#|$)/.test(lines[i + 1]!)) i++;
  }
  return result.join('\n');
}
