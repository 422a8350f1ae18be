import type { Executor } from '../store/db.js';

/** Token buckets shared by replicas (table `rate_limit_buckets`): `tokens` left at `at` (epoch ms). */

/** Creates the bucket full if missing, then reads it with its row locked until the transaction ends. */
export async function lockBucket(trx: Executor, key: string, capacity: number, now: number): Promise<{ tokens: number; at: number }> {
  await trx
    .insertInto('rate_limit_buckets')
    .values({ key, tokens: capacity, at: now })
    .onConflict((oc) => oc.column('key').doNothing())
    .execute();
  const row = await trx.selectFrom('rate_limit_buckets').select(['tokens', 'at']).where('key', '=', key).forUpdate().executeTakeFirstOrThrow();
  return { tokens: Number(row.tokens), at: Number(row.at) };
}

export async function writeBucket(trx: Executor, key: string, tokens: number, at: number): Promise<void> {
  await trx.updateTable('rate_limit_buckets').set({ tokens, at }).where('key', '=', key).execute();
}

/** Forgets buckets of one limiter (key prefix) untouched since `before`: they are full again, the same as none. */
export async function deleteFullBuckets(db: Executor, prefix: string, before: number): Promise<void> {
  await db.deleteFrom('rate_limit_buckets').where('key', 'like', `${prefix}%`).where('at', '<', before).execute();
}
