import type { ErrorCode } from './codes.js';

export const LANGUAGES = ['en', 'tr', 'es'] as const;
export type Language = (typeof LANGUAGES)[number];

/**
 * Picks the best supported language from an Accept-Language header (RFC 9110 §12.5.4):
 * highest q wins, ties keep header order, "tr-TR" matches "tr", "*" matches the default.
 */
export function negotiateLanguage(header: string | undefined | null): Language {
  if (!header) return 'en';
  const ranked = header
    .split(',')
    .map((part, index) => {
      const [tag = '', ...params] = part.trim().split(';');
      const qParam = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
      const q = qParam ? Number(qParam.slice(2)) : 1;
      return { tag: tag.trim().toLowerCase(), q: Number.isFinite(q) ? q : 0, index };
    })
    .filter((r) => r.tag && r.q > 0)
    .sort((a, b) => b.q - a.q || a.index - b.index);
  for (const { tag } of ranked) {
    if (tag === '*') return 'en';
    const primary = tag.split('-')[0] as Language;
    if ((LANGUAGES as readonly string[]).includes(primary)) return primary;
  }
  return 'en';
}

type Messages = Record<ErrorCode, string>;

// {name} placeholders are filled from the error's details.
const MESSAGES: Record<Language, Messages> = {
  en: {
    ERR_4001: 'Not enough credits: {required} needed, {available} available.',
    ERR_4002: 'This model is not available.',
    ERR_4003: 'The prompt must be between 3 and 5000 characters.',
    ERR_4004: 'Too many requests. Try again in {retry_after} seconds.',
    ERR_4005: 'Your session is missing or has expired. Please sign in again.',
    ERR_4006: 'You are not allowed to do this.',
    ERR_4007: 'The requested {resource} was not found.',
    ERR_4008: 'The request is invalid: {reason}',
    ERR_4009: 'A request with this idempotency key is still being processed.',
    ERR_4010: 'This idempotency key was already used for a different request.',
    ERR_4011: 'The purchase could not be verified.',
    ERR_4012: 'This purchase was already used by another account.',
    ERR_4013: 'This device could not be verified.',
    ERR_4014: 'This account has been suspended.',
    ERR_4015: 'The request body is too large (limit {limit_bytes} bytes).',
    ERR_4016: 'Unsupported content type; send application/json.',
    ERR_4017: 'This method is not allowed here.',
    ERR_4018: 'An Idempotency-Key header (1 to 255 characters) is required.',
    ERR_4019: 'This video was cancelled. Your credits were returned.',
    ERR_4020: 'Sign in with Apple to buy credits.',
    ERR_4021: 'The file is not a supported image. Upload a JPEG, PNG, HEIC or WebP image.',
    ERR_4022: 'The requested byte range is outside the file ({size} bytes).',
    ERR_4030: 'The prompt is too long for this model: at most {max_length} characters.',
    ERR_4031: 'This model cannot do that {field}. Allowed values: {allowed}.',
    ERR_4032: 'Exactly one row was requested, but {rows} rows matched.',
    ERR_4040: 'This Realtime request is not supported: {reason}',
    ERR_4041: 'Realtime limit reached: {reason}',
    ERR_4042: 'No API key found in request',
    ERR_4043: 'Invalid API key',
    ERR_4025: 'Sign-in failed: the email, password or one-time code is wrong.',
    ERR_4026: 'This account is closed (deleted or merged into another account).',
    ERR_4027: 'The form has expired or did not come from this console. Reload the page and try again.',
    ERR_4028: 'This change would leave the app with no model to show ({catalogue}). Confirm to go ahead anyway.',
    ERR_5001: 'The video provider did not answer in time. Your credits were returned.',
    ERR_5002: 'A required service is temporarily unavailable. Please try again shortly.',
    ERR_5003: 'The video provider rejected this prompt. Your credits were returned.',
    ERR_5004: 'The video provider delivered a broken video. Your credits were returned.',
    ERR_6001: 'The service is temporarily unavailable. Please try again shortly.',
    ERR_6002: 'File storage is temporarily unavailable. Please try again shortly.',
    ERR_6003: 'Something went wrong on our side. Please try again.',
  },
  tr: {
    ERR_4001: 'Yetersiz kredi: {required} gerekli, {available} mevcut.',
    ERR_4002: 'Bu model şu anda kullanılamıyor.',
    ERR_4003: 'İstem 3 ile 5000 karakter arasında olmalıdır.',
    ERR_4004: 'Çok fazla istek. {retry_after} saniye sonra tekrar deneyin.',
    ERR_4005: 'Oturumunuz yok veya süresi doldu. Lütfen tekrar giriş yapın.',
    ERR_4006: 'Bu işlem için yetkiniz yok.',
    ERR_4007: 'İstenen {resource} bulunamadı.',
    ERR_4008: 'İstek geçersiz: {reason}',
    ERR_4009: 'Bu idempotency anahtarıyla gönderilen istek hâlâ işleniyor.',
    ERR_4010: 'Bu idempotency anahtarı farklı bir istek için zaten kullanıldı.',
    ERR_4011: 'Satın alma doğrulanamadı.',
    ERR_4012: 'Bu satın alma başka bir hesap tarafından zaten kullanıldı.',
    ERR_4013: 'Bu cihaz doğrulanamadı.',
    ERR_4014: 'Bu hesap askıya alındı.',
    ERR_4015: 'İstek gövdesi çok büyük (sınır {limit_bytes} bayt).',
    ERR_4016: 'Desteklenmeyen içerik türü; application/json gönderin.',
    ERR_4017: 'Bu yöntem burada kullanılamaz.',
    ERR_4018: 'Idempotency-Key başlığı (1 ile 255 karakter) gereklidir.',
    ERR_4019: 'Bu video iptal edildi. Kredileriniz iade edildi.',
    ERR_4020: 'Kredi satın almak için Apple ile giriş yapın.',
    ERR_4021: 'Dosya desteklenen bir görsel değil. JPEG, PNG, HEIC veya WebP görsel yükleyin.',
    ERR_4022: 'İstenen bayt aralığı dosyanın dışında ({size} bayt).',
    ERR_4030: 'İstem bu model için çok uzun: en fazla {max_length} karakter.',
    ERR_4031: 'Bu model bu {field} değerini desteklemiyor. İzin verilen değerler: {allowed}.',
    ERR_4032: 'Tam olarak bir satır istendi, ancak {rows} satır eşleşti.',
    ERR_4040: 'Bu Realtime isteği desteklenmiyor: {reason}',
    ERR_4041: 'Realtime sınırına ulaşıldı: {reason}',
    ERR_4042: 'İstekte API anahtarı bulunamadı',
    ERR_4043: 'Geçersiz API anahtarı',
    ERR_4025: 'Giriş başarısız: e-posta, parola veya tek kullanımlık kod yanlış.',
    ERR_4026: 'Bu hesap kapatılmış (silinmiş veya başka bir hesapla birleştirilmiş).',
    ERR_4027: 'Formun süresi dolmuş veya bu konsoldan gelmemiş. Sayfayı yenileyip tekrar deneyin.',
    ERR_4028: 'Bu değişiklik uygulamada gösterilecek hiçbir model bırakmaz ({catalogue}). Yine de devam etmek için onaylayın.',
    ERR_5001: 'Video sağlayıcısı zamanında yanıt vermedi. Kredileriniz iade edildi.',
    ERR_5002: 'Gerekli bir hizmet geçici olarak kullanılamıyor. Lütfen birazdan tekrar deneyin.',
    ERR_5003: 'Video sağlayıcısı bu istemi reddetti. Kredileriniz iade edildi.',
    ERR_5004: 'Video sağlayıcısı bozuk bir video teslim etti. Kredileriniz iade edildi.',
    ERR_6001: 'Hizmet geçici olarak kullanılamıyor. Lütfen birazdan tekrar deneyin.',
    ERR_6002: 'Dosya depolama geçici olarak kullanılamıyor. Lütfen birazdan tekrar deneyin.',
    ERR_6003: 'Bizim tarafımızda bir sorun oluştu. Lütfen tekrar deneyin.',
  },
  es: {
    ERR_4001: 'Créditos insuficientes: se necesitan {required}, hay {available} disponibles.',
    ERR_4002: 'Este modelo no está disponible.',
    ERR_4003: 'La descripción debe tener entre 3 y 5000 caracteres.',
    ERR_4004: 'Demasiadas solicitudes. Inténtalo de nuevo en {retry_after} segundos.',
    ERR_4005: 'Tu sesión no existe o ha caducado. Vuelve a iniciar sesión.',
    ERR_4006: 'No tienes permiso para hacer esto.',
    ERR_4007: 'No se encontró el recurso solicitado ({resource}).',
    ERR_4008: 'La solicitud no es válida: {reason}',
    ERR_4009: 'Una solicitud con esta clave de idempotencia todavía se está procesando.',
    ERR_4010: 'Esta clave de idempotencia ya se usó para otra solicitud.',
    ERR_4011: 'No se pudo verificar la compra.',
    ERR_4012: 'Esta compra ya fue usada por otra cuenta.',
    ERR_4013: 'No se pudo verificar este dispositivo.',
    ERR_4014: 'Esta cuenta ha sido suspendida.',
    ERR_4015: 'El cuerpo de la solicitud es demasiado grande (límite {limit_bytes} bytes).',
    ERR_4016: 'Tipo de contenido no admitido; envía application/json.',
    ERR_4017: 'Este método no está permitido aquí.',
    ERR_4018: 'Se requiere una cabecera Idempotency-Key (de 1 a 255 caracteres).',
    ERR_4019: 'Este vídeo fue cancelado. Tus créditos fueron devueltos.',
    ERR_4020: 'Inicia sesión con Apple para comprar créditos.',
    ERR_4021: 'El archivo no es una imagen admitida. Sube una imagen JPEG, PNG, HEIC o WebP.',
    ERR_4022: 'El rango de bytes solicitado está fuera del archivo ({size} bytes).',
    ERR_4030: 'La descripción es demasiado larga para este modelo: como máximo {max_length} caracteres.',
    ERR_4031: 'Este modelo no admite ese valor de {field}. Valores permitidos: {allowed}.',
    ERR_4032: 'Se pidió exactamente una fila, pero coincidieron {rows}.',
    ERR_4040: 'Esta solicitud de Realtime no es compatible: {reason}',
    ERR_4041: 'Se alcanzó un límite de Realtime: {reason}',
    ERR_4042: 'No se encontró ninguna clave de API en la solicitud',
    ERR_4043: 'Clave de API no válida',
    ERR_4025: 'No se pudo iniciar sesión: el correo, la contraseña o el código de un solo uso son incorrectos.',
    ERR_4026: 'Esta cuenta está cerrada (eliminada o fusionada con otra cuenta).',
    ERR_4027: 'El formulario caducó o no proviene de esta consola. Recarga la página e inténtalo de nuevo.',
    ERR_4028: 'Este cambio dejaría la app sin ningún modelo que mostrar ({catalogue}). Confirma para continuar de todos modos.',
    ERR_5001: 'El proveedor de vídeo no respondió a tiempo. Tus créditos fueron devueltos.',
    ERR_5002: 'Un servicio necesario no está disponible temporalmente. Inténtalo de nuevo en breve.',
    ERR_5003: 'El proveedor de vídeo rechazó esta descripción. Tus créditos fueron devueltos.',
    ERR_5004: 'El proveedor de vídeo entregó un vídeo defectuoso. Tus créditos fueron devueltos.',
    ERR_6001: 'El servicio no está disponible temporalmente. Inténtalo de nuevo en breve.',
    ERR_6002: 'El almacenamiento de archivos no está disponible temporalmente. Inténtalo de nuevo en breve.',
    ERR_6003: 'Algo salió mal de nuestro lado. Inténtalo de nuevo.',
  },
};

export function localizedMessage(code: ErrorCode, lang: Language, details?: Record<string, unknown>): string {
  const template = MESSAGES[lang][code];
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => {
    const v = details?.[name];
    return v === undefined || v === null ? (name === 'resource' ? 'resource' : whole) : String(v);
  });
}

export const messageCatalog = MESSAGES;

/** Push notifications about a video (src/push/notifications.ts); a failure's body is its error code's message. */
export type PushText = 'video_ready_title' | 'video_ready_body' | 'video_failed_title' | 'video_failed_body';

const PUSH_TEXTS: Record<Language, Record<PushText, string>> = {
  en: {
    video_ready_title: 'Your video is ready',
    video_ready_body: 'Tap to watch it.',
    video_failed_title: 'Your video could not be created',
    video_failed_body: 'Something went wrong. Your credits were returned.',
  },
  tr: {
    video_ready_title: 'Videonuz hazır',
    video_ready_body: 'İzlemek için dokunun.',
    video_failed_title: 'Videonuz oluşturulamadı',
    video_failed_body: 'Bir sorun oluştu. Kredileriniz iade edildi.',
  },
  es: {
    video_ready_title: 'Tu vídeo está listo',
    video_ready_body: 'Toca para verlo.',
    video_failed_title: 'No se pudo crear tu vídeo',
    video_failed_body: 'Algo salió mal. Tus créditos fueron devueltos.',
  },
};

export function pushText(key: PushText, lang: Language): string {
  return PUSH_TEXTS[lang][key];
}

/** A stored language tag ("tr", "tr-TR", "es_ES") as one we speak, or undefined. */
export function supportedLanguage(tag: string | null | undefined): Language | undefined {
  const primary = tag?.trim().toLowerCase().split(/[-_]/)[0];
  return (LANGUAGES as readonly string[]).includes(primary ?? '') ? (primary as Language) : undefined;
}
