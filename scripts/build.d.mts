export declare const SRC: string;
export declare const DIST: string;
export declare const STAMP: string;
export declare function build(opts?: { quiet?: boolean }): Promise<void>;
export declare function isStale(): Promise<boolean>;
