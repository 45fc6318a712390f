// Replica directories left behind by a topic delete that a crash interrupted (issue 9). A
// delete is a committed metadata record; each broker then closes its replicas of the topic and
// removes `<dataDir>/topics/<topic id>` (cluster-node.ts). A crash between the two (or in the
// middle of the removal) leaves the directory, and the restarted broker's first reconciliation
// only opens what the state assigns: nothing else would ever remove it.
//
// Rule (safe whatever the applied state's lag): a topic id below the state's `topicIdNext` that
// the state has no topic for was deleted by a committed record (ids are never reused, and an
// applied state is a prefix of the committed log), so no later state can assign it here again.
// Only such directories are removed. A directory of a live topic is never touched (also not a
// partition the state assigns elsewhere: a lagging state could be wrong about that), nor a
// topic id at or above `topicIdNext` (a state that lags the record that created it), nor a name
// that is not a topic id. Each removal is logged.
import type { FileSystem } from '@streambus/storage';
import { isNotFound, joinPath, removeTree } from '@streambus/storage';
import type { Logger } from 'pino';
import type { MetadataState } from './controller/metadata-state.js';

/** At most this many directories are looked at per sweep (a bound on one pass's work). */
export const LEFTOVER_DIRS_SCANNED_MAX = 100_000;

/**
 * Removes the directories under `topicsDir` (`<dataDir>/topics`) of topics `state` shows as
 * deleted, except ids `inUse` (a replica still held); returns the paths removed.
 */
export async function removeDeletedTopicDirs(
  fs: FileSystem,
  topicsDir: string,
  state: MetadataState,
  inUse: (topicId: number) => boolean,
  logger: Pick<Logger, 'info' | 'warn'>,
): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.readdir(topicsDir);
  } catch (err) {
    if (isNotFound(err)) return [];
    throw err;
  }
  const removed: string[] = [];
  for (const name of names.slice(0, LEFTOVER_DIRS_SCANNED_MAX)) {
    if (!/^[1-9][0-9]{0,9}$/.test(name)) continue;
    const id = Number(name);
    if (id >= state.topicIdNext || state.topics.has(id) || inUse(id)) continue;
    const path = joinPath(topicsDir, name);
    await removeTree(fs, path);
    logger.info(
      { path, topicId: id },
      'removed the directory of a deleted topic (a delete here, or one a crash interrupted)',
    );
    removed.push(path);
  }
  if (removed.length > 0) await fs.syncDir(topicsDir);
  return removed;
}
