/**
 * The CPU-bound work of the benchmark's `work` command, in a module of its
 * own so the runner can calibrate it without loading the library.
 *
 * @module
 */

/** The loop: `n` rounds of an FNV-1a style mix. Called only through `spin`. */
function kernel(n: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < n; i++) {
    hash ^= i & 0xff;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

// Why the detour: called directly, V8 inlined the loop into its callers (the
// handler's `execute`, tcpy's `runHandler`), and once the server's other
// traffic had changed how those were compiled the loop ran 1.5-1.8x slower,
// inline and in the workers alike, so the CPU-bound figures swung from round
// to round. A call site that has seen four different functions is not
// inlined through: the loop keeps its own optimized code. The warm-up also
// gives every operation type feedback before the first long call (otherwise
// only the loop is compiled, on-stack, and the code after it deoptimizes on
// every call).
const entries = [
  kernel,
  kernel.bind(null),
  (n: number) => kernel(n),
  function (n: number) {
    return kernel(n);
  },
];
let entry = 0;
for (let i = 0; i < 1000; i++) {
  entry = i & 3;
  spin(16);
}
entry = 0;

/**
 * `n` rounds of pure computation, no allocation, no I/O. Returns the hash so
 * the loop cannot be optimized away.
 */
export function spin(n: number): number {
  return entries[entry](n);
}
