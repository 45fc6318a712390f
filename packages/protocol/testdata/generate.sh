#!/bin/sh
# Regenerates the codec interop vectors with the reference CLIs (lz4 1.9.4 = liblz4, the
# library librdkafka writes with; zstd 1.5.4). codecs.test.ts rebuilds the same inputs in
# JavaScript and checks that our decoders return them exactly.
set -e
cd "$(dirname "$0")"
TEXT=$(mktemp) NOISE=$(mktemp)
node -e "let s='';for(let i=0;i<3000;i++)s+='record-'+i+' the quick brown fox '+(i*7919%1000)+'\n';process.stdout.write(s)" > "$TEXT"
node -e "const b=Buffer.alloc(70000);let x=12345;for(let i=0;i<b.length;i++){x=(Math.imul(x,1103515245)+12345)>>>0;b[i]=x>>>24}process.stdout.write(b)" > "$NOISE"
lz4 -q -c "$TEXT" > text.default.lz4
lz4 -q -c -B4 -BD -BX --content-size "$TEXT" > text.b64k-linked-blockcrc-size.lz4
lz4 -q -c -B5 --no-frame-crc "$TEXT" > text.b256k-nocrc.lz4
lz4 -q -c -B7 -BX "$TEXT" > text.bauto-blockcrc.lz4
lz4 -q -c -B4 "$NOISE" > noise.b64k-stored.lz4
zstd -q -c "$TEXT" > text.default.zst
zstd -q -c --no-check -19 "$TEXT" > text.l19-nocheck.zst
(head -c 1000 "$TEXT" | zstd -q -c; tail -c +1001 "$TEXT" | zstd -q -c) > text.two-frames.zst
rm -f "$TEXT" "$NOISE"

# A zstd records section for the batch-level test (Node 20 cannot write zstd itself): the
# uncompressed records section of zstdSampleRecords() in record-batch.fuzz.test.ts, built with
# this package's own encoder (run `pnpm exec tsc -b packages/protocol` first).
node --input-type=module -e "
import { encodeRecordBatch } from '../dist/index.js';
const records = [];
for (let i = 0; i < 200; i++) records.push({ key: Buffer.from('k' + i), value: Buffer.from('value-' + i + '-'.repeat(i % 50)), timestamp: 1700000000000 + i });
process.stdout.write(encodeRecordBatch(records, { timestamp: 0 }).subarray(61));
" | zstd -q -c > records.zst
