// A partition of a topic, as the consumer-group protocol names it (assignments, owned partitions,
// committed offsets).
export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}
