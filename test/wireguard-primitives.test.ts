// WireGuard's primitives against published vectors: keyed BLAKE2s (the BLAKE2 reference keyed KAT, 32-byte digests,
// and golang.org/x/crypto/blake2s's 16-byte keyed vectors from the same key and inputs), XChaCha20-Poly1305
// (draft-irtf-cfrg-xchacha-03 §A.3.1), ChaCha20-Poly1305 (RFC 8439 §2.8.2), WireGuard's KDF (wireguard-go
// device/kdf_test.go), the handshake's initial chaining key and hash, TAI64N; keys and their redaction.
import t from 'tap';
import fc from 'fast-check';
import { inspect } from 'node:util';
import { PresharedKey, PrivateKey, PublicKey, decodeKey } from '../src/wireguard/keys.js';
import {
  aeadOpen,
  aeadSeal,
  chachaPolyOpen,
  chachaPolySeal,
  hash,
  INITIAL_CHAIN_KEY,
  INITIAL_HASH,
  kdf,
  mac,
  tai64n,
  xaeadOpen,
  xaeadSeal,
} from '../src/wireguard/primitives.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const seq = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => i & 0xff));
const SUNSCREEN = Buffer.from(
  "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
);

t.test(
  'keyed BLAKE2s, 32-byte digest: BLAKE2 reference KAT (blake2s-kat.txt, key 00..1f, input 00..n-1)',
  async (t) => {
    const kat: [number, string][] = [
      [0, '48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49'],
      [1, '40d15fee7c328830166ac3f918650f807e7e01e177258cdc0a39b11f598066f1'],
      [2, '6bb71300644cd3991b26ccd4d274acd1adeab8b1d7914546c1198bbe9fc9d803'],
      [3, '1d220dbe2ee134661fdf6d9e74b41704710556f2f6e5a091b227697445dbea6b'],
      [63, 'c65382513f07460da39833cb666c5ed82e61b9e998f4b0c4287cee56c3cc9bcd'],
      [64, '8975b0577fd35566d750b362b0897a26c399136df07bababbde6203ff2954ed4'],
      [65, '21fe0ceb0052be7fb0f004187cacd7de67fa6eb0938d927677f2398c132317a8'],
      [128, '0c311f38c35a4fb90d651c289d486856cd1413df9b0677f53ece2cd9e477c60a'],
      [255, '3fb735061abc519dfe979e54c1ee5bfad0a9d858b3315bad34bde999efd724dd'],
    ];
    for (const [n, want] of kat) t.equal(mac(seq(32), seq(n), 32).toString('hex'), want, `input of ${n} bytes`);
  },
);

t.test('keyed BLAKE2s, 16-byte digest (MAC1/MAC2 size): golang.org/x/crypto/blake2s hashes128', async (t) => {
  const kat: [number, string][] = [
    [0, '9536f9b267655743dee97b8a670f9f53'],
    [1, '13bacfb85b48a1223c595f8c1e7e82cb'],
    [2, 'd47a9b1645e2feae501cd5fe44ce6333'],
    [3, '1e2a79436a7796a3e9826bfedf07659f'],
    [63, 'ece382a8bd5018f1de5da44b72cea75b'],
    [64, 'f1efa90d2547036841ecd3627fafbc36'],
    [65, '811ff8686d23a435ecbd0bdafcd27b1b'],
    [128, '8c09f698d03eaf88abf69f8147865ef6'],
    [254, '1758d6f8b982aec9fbe50f20e3082b46'],
  ];
  for (const [n, want] of kat) t.equal(mac(seq(32), seq(n)).toString('hex'), want, `input of ${n} bytes`);
  t.throws(() => mac(Buffer.alloc(33), seq(1)), { code: 'ERR_OUT_OF_RANGE' }, 'a key over 32 bytes is refused');
  t.throws(() => mac(Buffer.alloc(0), seq(1)), { code: 'ERR_OUT_OF_RANGE' }, 'an empty key is refused');
});

t.test('XChaCha20-Poly1305: draft-irtf-cfrg-xchacha-03 §A.3.1', async (t) => {
  const key = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
  const nonce = hex('404142434445464748494a4b4c4d4e4f5051525354555657');
  const ad = hex('50515253c0c1c2c3c4c5c6c7');
  const want = hex(`bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb
    731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e
    3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e c0875924c1c7987947deafd8780acf49`);
  const sealed = xaeadSeal(key, nonce, SUNSCREEN, ad);
  t.equal(sealed.toString('hex'), want.toString('hex'), 'ciphertext || tag');
  t.same(xaeadOpen(key, nonce, sealed, ad), SUNSCREEN, 'opens');
  const bad = Buffer.from(sealed);
  bad[bad.length - 1]! ^= 1;
  t.equal(xaeadOpen(key, nonce, bad, ad), null, 'a flipped tag bit is refused');
  t.equal(xaeadOpen(key, nonce, sealed, Buffer.from('other')), null, 'other associated data is refused');
  t.equal(xaeadOpen(key, nonce, sealed.subarray(0, 15), ad), null, 'shorter than a tag');
});

t.test('ChaCha20-Poly1305: RFC 8439 §2.8.2', async (t) => {
  const key = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
  const nonce = hex('070000004041424344454647');
  const ad = hex('50515253c0c1c2c3c4c5c6c7');
  const want = hex(`d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a
    71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de5
    76d26586cec64b6116 1ae10b594f09e26a7e902ecbd0600691`);
  const sealed = chachaPolySeal(key, nonce, SUNSCREEN, ad);
  t.equal(sealed.toString('hex'), want.toString('hex'));
  t.same(chachaPolyOpen(key, nonce, sealed, ad), SUNSCREEN);
  const bad = Buffer.from(sealed);
  bad[3]! ^= 0x80;
  t.equal(chachaPolyOpen(key, nonce, bad, ad), null, 'a flipped ciphertext bit is refused');
  // WireGuard's nonce: 4 zero bytes then the 64-bit counter, little-endian.
  const n = Buffer.alloc(12);
  n.writeBigUInt64LE(0x0102030405060708n, 4);
  t.same(aeadSeal(key, 0x0102030405060708n, SUNSCREEN, ad), chachaPolySeal(key, n, SUNSCREEN, ad));
  t.same(aeadOpen(key, 0x0102030405060708n, aeadSeal(key, 0x0102030405060708n, SUNSCREEN, ad), ad), SUNSCREEN);
});

t.test('KDF1..3: wireguard-go device/kdf_test.go', async (t) => {
  const vectors = [
    [
      '746573742d6b6579',
      '746573742d696e707574',
      '6f0e5ad38daba1bea8a0d213688736f19763239305e0f58aba697f9ffc41c633',
      'df1194df20802a4fe594cde27e92991c8cae66c366e8106aaa937a55fa371e8a',
      'fac6e2745a325f5dc5d11a5b165aad08b0ada28e7b4e666b7c077934a4d76c24',
    ],
    [
      '776972656775617264',
      '776972656775617264',
      '491d43bbfdaa8750aaf535e334ecbfe5129967cd64635101c566d4caefda96e8',
      '1e71a379baefd8a79aa4662212fcafe19a23e2b609a3db7d6bcba8f560e3d25f',
      '31e1ae48bddfbe5de38f295e5452b1909a1b4e38e183926af3780b0c1e1f0160',
    ],
    [
      '',
      '',
      '8387b46bf43eccfcf349552a095d8315c4055beb90208fb1be23b894bc2ed5d0',
      '58a0e5f6faefccf4807bff1f05fa8a9217945762040bcec2f4b4a62bdfe0e86e',
      '0ce6ea98ec548f8e281e93e32db65621c45eb18dc6f0a7ad94178610a2f7338e',
    ],
  ] as const;
  for (const [key, input, t0, t1, t2] of vectors) {
    t.same(
      kdf(3, hex(key), hex(input)).map((b) => b.toString('hex')),
      [t0, t1, t2],
    );
    t.same(
      kdf(2, hex(key), hex(input)).map((b) => b.toString('hex')),
      [t0, t1],
    );
    t.same(
      kdf(1, hex(key), hex(input)).map((b) => b.toString('hex')),
      [t0],
    );
  }
});

t.test('initial chaining key and hash: HASH(construction), HASH(Ci || identifier)', async (t) => {
  // The constants other implementations hard-code (e.g. the Rust wireguard-rs handshake's INITIAL_CK/INITIAL_HS).
  t.equal(INITIAL_CHAIN_KEY.toString('hex'), '60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36');
  t.equal(INITIAL_HASH.toString('hex'), '2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3');
  t.same(hash('a', Buffer.from('bc')), hash('abc'), 'HASH concatenates its parts');
});

t.test('TAI64N: 2^62 + 10 + seconds, nanoseconds whitened to 2^24, increasing with time', async (t) => {
  const ts = tai64n(1_700_000_000_123);
  t.equal(ts.length, 12);
  t.equal(ts.readBigUInt64BE(0), 0x400000000000000an + 1_700_000_000n);
  t.equal(ts.readUInt32BE(8), Math.floor(123e6 / 2 ** 24) * 2 ** 24);
  t.ok(Buffer.compare(tai64n(1_700_000_001_000), ts) > 0);
  t.equal(Buffer.compare(tai64n(1_700_000_000_124), ts), 0, 'within 16.7 ms the timestamp does not move');
});

t.test('keys: base64 as wg(8) writes them, X25519 agreement, secrets redacted', async (t) => {
  const a = PrivateKey.generate();
  const b = PrivateKey.generate();
  t.same(a.dh(b.publicKey), b.dh(a.publicKey), 'both sides agree');
  const again = PrivateKey.fromBase64(a.exportBase64())!;
  t.ok(again.publicKey.equals(a.publicKey), 'round trip through base64');
  t.equal(PublicKey.fromBase64(a.publicKey.toString())!.toString(), a.publicKey.toString());
  // RFC 7748 §6.1: Alice's and Bob's keys.
  const alice = PrivateKey.fromBytes(hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'))!;
  const bob = PublicKey.fromBytes(hex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f'))!;
  t.equal(alice.publicKey.bytes.toString('hex'), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
  t.equal(alice.dh(bob)!.toString('hex'), '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742');
  t.equal(alice.dh(PublicKey.fromBytes(Buffer.alloc(32))!), null, 'a low-order point gives null, not zeros');

  const secret = a.exportBase64();
  const psk = PresharedKey.fromBase64(b.exportBase64())!;
  for (const shown of [String(a), JSON.stringify({ a, psk }), inspect(a), inspect({ psk }), `${psk}`]) {
    t.notOk(shown.includes(secret) || shown.includes(b.exportBase64()), `no secret in: ${shown}`);
    t.ok(shown.includes('[redacted]'));
  }
  t.ok(inspect(a).includes(a.publicKey.toString()), 'the public half may print');

  for (const bad of ['', 'abc', '!'.repeat(44), 'A'.repeat(44), `${'A'.repeat(42)}==`, `${secret} x`]) {
    t.equal(decodeKey(bad), null, `refused: ${JSON.stringify(bad)}`);
  }
  fc.assert(
    fc.property(fc.string({ maxLength: 60 }), (s) => {
      const k = decodeKey(s);
      return k === null || k.length === 32;
    }),
  );
});
