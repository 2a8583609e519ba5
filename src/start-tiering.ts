// V8's compilers stay off while weft starts. The `weft` bin starts node with --no-opt --no-sparkplug: start-up runs
// a few loops hot enough for TurboFan (node's module resolution, the CommonJS export lexer, protobufjs parsing etcd's
// rpc.proto, zod building its schemas) and many functions warm enough for Sparkplug's baseline code, all of them
// once. Compiling them pulled ~4.5 MB of V8's compiler text into RSS and left ~3 MB of compiler memory, optimized
// and baseline code, for functions that never run again; in the interpreter alone start-up takes as long. Every
// command but the daemon turns both compilers on before its work starts; the daemon does once subnet.env is
// written, or, in a network of more than 256 leases, before it lists them (there the listing is start-up's real
// work). From then on the forwarding path is compiled as it warms up, as before; what start-up alone ran is not.
// Node calls flag changes after start unsupported in general; these two V8 reads at every tiering decision, and
// test/daemon-footprint.test.ts checks on the node we ship that a warm function gets baseline code and a hot one is
// optimized once they are turned on.
import { setFlagsFromString } from 'node:v8';

/** TurboFan and Sparkplug on from now on (no-ops when node was started without --no-opt --no-sparkplug). */
export function optimizeFromNowOn(): void {
  setFlagsFromString('--opt');
  setFlagsFromString('--sparkplug');
}
