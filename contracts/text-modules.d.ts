// Text modules: wrangler (and vitest-pool-workers) bundle *.txt files as strings
// through the [[rules]] in wrangler.toml.
declare module '*.txt' {
  const text: string;
  export default text;
}
