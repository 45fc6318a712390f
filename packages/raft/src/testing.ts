// @streambus/raft/testing: the deterministic simulator, its safety checkers and the scripted
// scenario driver, for tests in other packages (e.g. to drive a storage-backed LogStorage
// through the same faults). Not for production code.
export {
  chainNext,
  DurableLogMirror,
  entryKey,
  SafetyChecker,
  type Violation,
} from './sim/checker.js';
export {
  ELECTION_TICKS,
  HEARTBEAT_TICKS,
  LIVENESS_TICKS_MAX,
  runSeed,
  type SimOptions,
  type SimResult,
  Simulation,
  TICK_MS,
} from './sim/cluster.js';
export { EventQueue, type Scheduled } from './sim/event-queue.js';
export { replayCommand, runSeeds, type SeedsSummary } from './sim/run.js';
export { formatEntry, formatMessage, runScenarioFile, ScenarioEnv } from './sim/scenario.js';
