// The banner printed whenever the stack runs on random weights: loud on purpose,
// so nobody mistakes a demo model's numbers for real ImageReward scores.
export function demoBanner(reason: string): string {
  const lines = [
    'DEMO MODEL: random weights, scores are meaningless — to score for real:',
    '  npx imagereward fetch-model        (downloads ImageReward.pt, 1.8 GB, into the cache; then npm start again)',
    '  or IMAGEREWARD_MODEL=/path/to/ImageReward.pt (or a converted model dir) npm start',
    `Why the demo model: ${reason}`,
  ];
  const width = Math.max(...lines.map((l) => l.length));
  const bar = '!'.repeat(Math.min(width, 100));
  return [bar, ...lines, bar].join('\n');
}
