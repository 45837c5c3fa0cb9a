// Ranks as upstream ImageReward.inference_rank reports them: ranking[i] is the
// 1-based place of image i when the rewards are sorted in descending order.
// Ties keep index order (the earlier image gets the better place); NaN ranks last.

export function rankRewards(rewards: ArrayLike<number>): number[] {
  const n = rewards.length;
  const key = (i: number): number => {
    const r = rewards[i] as number;
    return Number.isNaN(r) ? -Infinity : r;
  };
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    if (ka !== kb) return kb > ka ? 1 : -1;
    const nanA = Number.isNaN(rewards[a] as number);
    const nanB = Number.isNaN(rewards[b] as number);
    if (nanA !== nanB) return nanA ? 1 : -1;
    return a - b;
  });
  const ranking = new Array<number>(n);
  order.forEach((index, place) => {
    ranking[index] = place + 1;
  });
  return ranking;
}
