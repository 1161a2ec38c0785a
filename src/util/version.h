/* SPDX-License-Identifier: Apache-2.0 */
/* msb's version, shared by the CLI and the library (user agent, --version). */
#ifndef MSB_UTIL_VERSION_H
#define MSB_UTIL_VERSION_H

#define MSB_VERSION "0.1.0"

#endif
