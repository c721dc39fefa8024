/** This package's version (kept equal to package.json's by the tests). */
export const SDK_VERSION = "0.1.0";
