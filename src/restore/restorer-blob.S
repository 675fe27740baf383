/* The freestanding restorer (src/restorer/), linked in as one flat blob. */
	.section .rodata
	.balign 4096
	.globl cryo_restorer_blob, cryo_restorer_blob_end
cryo_restorer_blob:
	.incbin RESTORER_BIN
cryo_restorer_blob_end:
	.section .note.GNU-stack,"",@progbits
