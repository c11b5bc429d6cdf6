/*
 * fuzz_tabs.c - libFuzzer target over what a hostile tab can hand the
 * broker: the records of a batch's output (broker_check_output, the pass
 * that runs before the broker acts on any record) and message values
 * (wire_value_check, then wire_value_json, which must stay inside its
 * buffer and produce balanced JSON for anything the check lets through).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tabs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)broker_check_output(data, size);
    if (wire_value_check(data, size) == 0) {
        static char json[1 << 16];
        size_t caps[] = {1, 7, 64, sizeof json};
        for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
            size_t n = wire_value_json(data, size, json, caps[i]);
            if (n >= caps[i] || json[n] != '\0')
                abort();
        }
    }
    return 0;
}
