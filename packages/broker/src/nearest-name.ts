// The known name a misspelt one most likely meant, for "did you mean ...?" in configuration
// errors (environment variables, file and flag keys). Pure and small: the candidate lists are
// the configuration schema's few dozen names.

/** Edit distance (insertions, deletions, substitutions), case-insensitive. */
function distance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const row = [i];
    for (let j = 1; j <= y.length; j++) {
      const cost = x[i - 1] === y[j - 1] ? 0 : 1;
      row.push(
        Math.min(
          (prev[j] as number) + 1,
          (row[j - 1] as number) + 1,
          (prev[j - 1] as number) + cost,
        ),
      );
    }
    prev = row;
  }
  return prev[y.length] as number;
}

/** Words of a name: `STREAMBUS_DATA_DIR` -> data, dir; `limits.frameBytesMax` -> limits, frame, bytes, max. */
function words(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((w) => w.length > 0);
}

/**
 * The candidate nearest to `name`. A candidate holding every word of `name` (`STREAMBUS_DIR` ->
 * `STREAMBUS_DATA_DIR`, `durability` -> `defaults.durability`) wins over spelling distance,
 * the shortest such first; otherwise the smallest edit distance. Null only without candidates.
 */
export function nearestName(name: string, candidates: Iterable<string>): string | null {
  const want = words(name);
  let best: string | null = null;
  let bestScore = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const have = words(c);
    const contains = want.length > 0 && want.every((w) => have.includes(w));
    // Containing every word ranks before any spelling distance; ties go to the shorter name.
    const score = contains ? c.length - 1e6 : distance(name, c) * 1e3 + c.length;
    if (score < bestScore) {
      bestScore = score;
      best = c;
    }
  }
  return best;
}
