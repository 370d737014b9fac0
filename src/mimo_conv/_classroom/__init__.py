"""The classroom: section 6.4 of "Dive into Deep Learning" by its own names, and tools to teach it.

The textbook's functions, the step-by-step walkthrough, operation counts, the exercises,
compose/decompose, the convolution as a matrix, the demo and the command line. Built on
the public operations; nothing in the library imports the classroom.
"""
