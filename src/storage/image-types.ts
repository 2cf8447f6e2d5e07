/**
 * What an uploaded input image really is, read from its first bytes (magic numbers), never from the
 * client's Content-Type. Only the four types the Security issue allows: JPEG (what the shipped app
 * sends, docs/reference/ios-app.md §2.3), PNG, HEIC/HEIF and WebP. GIF is refused: the app never uploads it and
 * the providers animate still images.
 */
export const ACCEPTED_IMAGE_TYPES = ['image/jpeg', 'image/png', 'image/heic', 'image/heif', 'image/webp'] as const;
export type ImageType = (typeof ACCEPTED_IMAGE_TYPES)[number];

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const WEBP_CHUNKS = new Set(['VP8 ', 'VP8L', 'VP8X']);
// ISO/IEC 23008-12 brands of HEVC-coded still images; "mif1" is any HEIF image collection.
const HEIC_BRANDS = new Set(['heic', 'heix', 'heim', 'heis']);
// AVIF is a HEIF container too (brand mif1) but AV1-coded, which providers may not decode.
const AVIF_BRANDS = new Set(['avif', 'avis']);

export function sniffImageType(bytes: Buffer): ImageType | undefined {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'image/jpeg';
  if (bytes.length > PNG_SIGNATURE.length && bytes.subarray(0, PNG_SIGNATURE.length).equals(PNG_SIGNATURE)) return 'image/png';
  if (bytes.length >= 16 && ascii(bytes, 0) === 'RIFF' && ascii(bytes, 8) === 'WEBP' && WEBP_CHUNKS.has(ascii(bytes, 12))) return 'image/webp';
  return heifType(bytes);
}

/** An ISO base media file whose leading ftyp box names a HEIF still-image brand. */
function heifType(bytes: Buffer): ImageType | undefined {
  if (bytes.length < 16 || ascii(bytes, 4) !== 'ftyp') return undefined;
  const boxSize = bytes.readUInt32BE(0);
  if (boxSize < 16 || boxSize > bytes.length || boxSize % 4 !== 0) return undefined;
  // The major brand, then (after the 4-byte minor version) the compatible brands.
  const brands = [ascii(bytes, 8)];
  for (let at = 16; at < boxSize; at += 4) brands.push(ascii(bytes, at));
  if (brands.some((b) => HEIC_BRANDS.has(b))) return 'image/heic';
  if (brands.some((b) => AVIF_BRANDS.has(b))) return undefined;
  return brands.includes('mif1') ? 'image/heif' : undefined;
}

const ascii = (bytes: Buffer, at: number) => bytes.toString('latin1', at, at + 4);
