/**
 * Training batches: each query with one positive (drawn at random when there are several) and
 * group_size − 1 hard negatives (drawn without replacement; repeated only when a record has
 * too few). Every epoch shuffles and draws afresh from a seeded RNG. With `noDuplicates`
 * (default), no query and no passage text appears twice in a batch, since a duplicate would
 * become a false in-batch negative: a conflicting record waits for a later batch.
 * Without hard negatives (group_size 1) a batch of one pair has no negative at all (its loss is
 * 0, a wasted step): such a pair joins the batch before it, or, when that would repeat a text,
 * is left out of this epoch (the caller counts it as records − batched pairs).
 */
import type { QueryRecord } from '../data/records.js';
import { Rng } from '../util/rng.js';

export interface TrainExample {
  query: string;
  /** The positive first, then the negatives: group_size passages. */
  passages: string[];
  /** The teacher's scores of `passages` (distillation: the records' pos_scores / neg_scores). */
  teacher?: number[];
}

export interface SamplerOptions {
  batchSize: number;
  groupSize: number;
  noDuplicates?: boolean;
}

/** Draws one query's group of passages. */
export function drawGroup(r: QueryRecord, groupSize: number, rng: Rng): string[] {
  return drawExample(r, groupSize, rng).passages;
}

/** One query's example: its group of passages, with their teacher scores when the record has them. */
export function drawExample(r: QueryRecord, groupSize: number, rng: Rng): TrainExample {
  const want = groupSize - 1;
  // Every caller's records are checked when read (records.ts); a library caller's may not be.
  if (r.pos.length === 0) throw new Error(`the record of query ${JSON.stringify(r.query.slice(0, 60))} has no positive passage`);
  if (want > 0 && r.neg.length === 0) throw new Error(`the record of query ${JSON.stringify(r.query.slice(0, 60))} has no negatives, but group_size is ${groupSize}`);
  const pos = rng.int(r.pos.length);
  let negs: number[] = [];
  const all = r.neg.map((_, i) => i);
  if (want === 0) negs = [];
  else if (r.neg.length >= want) {
    negs = rng.sample(all, want);
    // rng.sample keeps input order; shuffle so the order carries no rank information
    for (let i = negs.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [negs[i], negs[j]] = [negs[j]!, negs[i]!];
    }
  } else {
    negs = [...all];
    while (negs.length < want) negs.push(rng.int(r.neg.length));
  }
  const passages = [r.pos[pos]!, ...negs.map((i) => r.neg[i]!)];
  const teacher = r.posScores && r.negScores ? [r.posScores[pos]!, ...negs.map((i) => r.negScores![i]!)] : undefined;
  return { query: r.query, passages, ...(teacher && { teacher }) };
}

/**
 * The batches of one epoch, in order. Deterministic for a given RNG state, so a resumed run can
 * rebuild the epoch from the state saved at its start and skip the batches already done.
 */
export function epochBatches(records: readonly QueryRecord[], o: SamplerOptions, rng: Rng): TrainExample[][] {
  const order = records.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const examples = order.map((i) => drawExample(records[i]!, o.groupSize, rng));
  const noDup = o.noDuplicates ?? true;
  const batches: TrainExample[][] = [];
  let deferred: TrainExample[] = [];
  let next = 0;
  while (next < examples.length || deferred.length) {
    const batch: TrainExample[] = [];
    const seen = new Set<string>();
    const waiting: TrainExample[] = [];
    const place = (e: TrainExample) => {
      const texts = [e.query, ...new Set(e.passages)];
      if (batch.length < o.batchSize && (!noDup || texts.every((t) => !seen.has(t)))) {
        batch.push(e);
        texts.forEach((t) => seen.add(t));
      } else waiting.push(e);
    };
    deferred.forEach(place); // records that waited go first
    while (batch.length < o.batchSize && next < examples.length) place(examples[next++]!);
    deferred = waiting;
    if (batch.length === 1 && o.groupSize === 1 && o.batchSize > 1) {
      const prev = batches[batches.length - 1];
      const texts = (b: TrainExample[]) => b.flatMap((e) => [e.query, ...e.passages]);
      const taken = new Set(prev ? texts(prev) : []);
      if (prev && (!noDup || texts(batch).every((t) => !taken.has(t)))) prev.push(batch[0]!);
      continue;
    }
    batches.push(batch);
  }
  return batches;
}

/**
 * Optimizer steps of `epochs` epochs, counted from the batches each epoch will really cut (the
 * epoch RNG carries on from one epoch to the next, as training draws them): duplicate-free
 * batching can give later epochs more batches than the first, and a schedule sized from epoch 1
 * would run those extra steps at learning rate 0. A fractional last epoch counts its share.
 * @example scheduleSteps(records, { batchSize: 32, groupSize: 4 }, 42, 3)
 */
export function scheduleSteps(records: readonly QueryRecord[], o: SamplerOptions, seed: number, epochs: number): number {
  let state = new Rng(seed).seedState;
  let total = 0;
  for (let e = 0; e < Math.ceil(epochs); e++) {
    const rng = new Rng(state);
    const n = epochBatches(records, o, rng).length;
    state = rng.seedState;
    total += e + 1 <= epochs ? n : Math.ceil(n * (epochs - e));
  }
  return total;
}
