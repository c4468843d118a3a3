/**
 * LZF decompression (liblzf's lzf_decompress), for the compressed strings of an RDB: Redis
 * compresses strings over 20 bytes when rdbcompression is on, keys included. Pure; a damaged
 * string throws (the walk turns that into its own error, with the offset).
 */
export function lzfDecompress(input: Buffer, outputLength: number): Buffer {
  const out = Buffer.allocUnsafe(outputLength);
  let ip = 0;
  let op = 0;
  while (ip < input.length) {
    const ctrl = input[ip++]!;
    if (ctrl < 32) {
      // a literal run of ctrl + 1 bytes
      const n = ctrl + 1;
      if (op + n > outputLength || ip + n > input.length) throw new Error('corrupt LZF string: a literal runs past its end');
      input.copy(out, op, ip, ip + n);
      ip += n;
      op += n;
    } else {
      // a back reference: length (ctrl >> 5) + 2, or 9 + the next byte when that is 7
      let len = ctrl >> 5;
      if (len === 7) {
        if (ip >= input.length) throw new Error('corrupt LZF string: truncated back reference');
        len += input[ip++]!;
      }
      if (ip >= input.length) throw new Error('corrupt LZF string: truncated back reference');
      const ref = op - ((ctrl & 0x1f) << 8) - 1 - input[ip++]!;
      len += 2;
      if (ref < 0 || op + len > outputLength) throw new Error('corrupt LZF string: a back reference outside the output');
      // byte by byte: the reference may overlap what it writes
      for (let k = 0; k < len; k++) out[op++] = out[ref + k]!;
    }
  }
  if (op !== outputLength) throw new Error(`corrupt LZF string: ${op} bytes where ${outputLength} were announced`);
  return out;
}
