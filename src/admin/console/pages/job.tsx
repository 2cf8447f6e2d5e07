import type { Context } from 'hono';
import type { FC } from 'hono/jsx';
import type { AppEnv } from '../../../http/context.js';
import type { AdminService } from '../../service.js';
import { Head } from '../components.js';
import { json, when } from '../format.js';
import { Layout } from '../layout.js';

/** A job's timeline: states, ledger steps, provider events and its error. */
export const JobPage: FC<{ c: Context<AppEnv>; timeline: NonNullable<Awaited<ReturnType<AdminService['jobTimeline']>>> }> = ({ c, timeline: { job, events } }) => (
  <Layout title={`Job ${job.job_id}`} c={c}>
    <p>
      User <a href={`/admin/users/${job.user_id}`}>{job.user_id}</a> · model {job.model_id} · provider {job.provider} <code>{job.provider_job_id ?? ''}</code> · status <b>{job.status}</b> · {job.credits_used} credits · attempts {job.attempts}
    </p>
    {job.media_codec && (
      <p id="media">
        Video: {job.media_duration_seconds?.toFixed(2)} s · {job.media_width}×{job.media_height} · {job.media_codec} · {job.media_size_bytes} bytes · poster{' '}
        {job.poster_source ?? 'none'}
      </p>
    )}
    {job.error_code && (
      <div class="error">
        {job.error_code}: {job.error_message}
        {job.provider_error && (
          <>
            {' '}
            — provider: <code>{job.provider_error}</code>
          </>
        )}
      </div>
    )}
    {job.media_rejection && (
      <div id="media-rejection">
        Delivered file rejected: <code>{json(job.media_rejection)}</code>
      </div>
    )}
    <table id="timeline">
      <Head cols={['When', 'Kind', 'What', 'Detail']} />
      <tbody>
        {events.map((e) => (
          <tr>
            <td>{when(e.at)}</td>
            <td>{e.kind}</td>
            <td>{e.what}</td>
            <td>
              <code>{json(e.detail)}</code>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  </Layout>
);
