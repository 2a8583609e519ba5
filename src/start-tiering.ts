// TurboFan stays off while weft starts. The `weft` bin starts node with --no-opt: start-up runs a few loops hot
// enough for V8's optimizing compiler (node's module resolution, the CommonJS export lexer, protobufjs parsing etcd's
// rpc.proto, zod building its schemas), and compiling them once pulls ~3.7 MB of V8's compiler text into RSS and
// leaves ~2 MB of compiler memory and optimized code, for functions that never run again. Interpreted and
// baseline-compiled (Sparkplug), start-up takes about as long. Every command but the daemon turns TurboFan on before
// its work starts; the daemon does once subnet.env is written, before a pod can send its first packet. From then on
// the forwarding path is optimized as it warms up, as before; what start-up alone ran is never optimized.
// Node calls flag changes after start unsupported in general; this flag V8 reads at every tiering decision, and
// test/daemon-footprint.test.ts checks on the node we ship that a hot function is optimized once it is turned on.
import { setFlagsFromString } from 'node:v8';

/** TurboFan on from now on (a no-op when node was started without --no-opt). */
export function optimizeFromNowOn(): void {
  setFlagsFromString('--opt');
}
