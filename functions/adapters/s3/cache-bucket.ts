/**
 * The cache bucket: multipart uploads whose parts the agents PUT to presigned URLs, and presigned
 * GETs they download with parallel ranges. The Lambda never moves entry data itself.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { StoredObject, UploadedPart } from '../../core/cache/model.js';
import { lazyClient } from '../../shared/aws.js';

/**
 * Path-style addressing when an endpoint is configured (AWS_ENDPOINT_URL_S3, the local emulator);
 * virtual-hosted style on AWS.
 */
export const s3Client = lazyClient(
  () =>
    new S3Client({
      maxAttempts: 3,
      // No default CRC32 of an empty body in the presigned part URLs (the agent's bytes differ).
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      forcePathStyle: Boolean(process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL),
    }),
);

/** Lifetime of the presigned URLs: long enough for a slow agent to move its parts. */
export const PRESIGN_SECONDS = 3600;

export interface CacheBucket {
  createUpload(objectKey: string): Promise<string>;
  presignParts(objectKey: string, uploadId: string, parts: number): Promise<string[]>;
  complete(objectKey: string, uploadId: string, parts: readonly UploadedPart[]): Promise<void>;
  abort(objectKey: string, uploadId: string): Promise<void>;
  /** Size in bytes, or undefined when there is no such object. */
  size(objectKey: string): Promise<number | undefined>;
  presignGet(objectKey: string): Promise<string>;
  delete(objectKey: string): Promise<void>;
  list(): AsyncIterable<StoredObject>;
}

export function s3CacheBucket(bucket: string, client: () => S3Client = s3Client): CacheBucket {
  return {
    async createUpload(objectKey) {
      const out = await client().send(
        new CreateMultipartUploadCommand({ Bucket: bucket, Key: objectKey, ContentType: 'application/x-tar' }),
      );
      if (out.UploadId === undefined) throw new Error('S3 CreateMultipartUpload returned no UploadId');
      return out.UploadId;
    },
    presignParts(objectKey, uploadId, parts) {
      return Promise.all(
        Array.from({ length: parts }, (_, i) =>
          getSignedUrl(
            client(),
            new UploadPartCommand({ Bucket: bucket, Key: objectKey, UploadId: uploadId, PartNumber: i + 1 }),
            { expiresIn: PRESIGN_SECONDS },
          ),
        ),
      );
    },
    async complete(objectKey, uploadId, parts) {
      await client().send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: objectKey,
          UploadId: uploadId,
          MultipartUpload: {
            Parts: parts.map((p) => ({
              PartNumber: p.partNumber,
              ETag: p.etag.startsWith('"') ? p.etag : `"${p.etag}"`,
            })),
          },
        }),
      );
    },
    async abort(objectKey, uploadId) {
      await client().send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: objectKey, UploadId: uploadId }));
    },
    async size(objectKey) {
      try {
        const out = await client().send(new HeadObjectCommand({ Bucket: bucket, Key: objectKey }));
        return out.ContentLength ?? 0;
      } catch (error) {
        const name = (error as Error | undefined)?.name;
        if (name === 'NotFound' || name === 'NoSuchKey') return undefined;
        throw error;
      }
    },
    presignGet(objectKey) {
      return getSignedUrl(client(), new GetObjectCommand({ Bucket: bucket, Key: objectKey }), {
        expiresIn: PRESIGN_SECONDS,
      });
    },
    async delete(objectKey) {
      await client().send(new DeleteObjectCommand({ Bucket: bucket, Key: objectKey }));
    },
    async *list() {
      let token: string | undefined;
      do {
        const out = await client().send(
          new ListObjectsV2Command({ Bucket: bucket, ...(token ? { ContinuationToken: token } : {}) }),
        );
        for (const o of out.Contents ?? []) {
          if (o.Key !== undefined) yield { key: o.Key, lastModified: o.LastModified?.getTime() ?? 0 };
        }
        token = out.IsTruncated ? out.NextContinuationToken : undefined;
      } while (token);
    },
  };
}
